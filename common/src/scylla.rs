//! The distributed store on ScyllaDB (any CQL store).

pub mod attempts;
pub mod store;

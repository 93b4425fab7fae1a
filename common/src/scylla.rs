//! The distributed store on ScyllaDB (any CQL store).

pub mod attempts;
pub mod errors;
pub mod schema;
pub mod store;
pub mod tls;

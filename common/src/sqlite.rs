//! The embedded backends, for one machine: the queue as a SQLite log file, and
//! the store (keys, sessions, dead letters, processing attempts) in another.

pub mod attempts;
pub mod connection;
pub mod queue;
pub mod store;

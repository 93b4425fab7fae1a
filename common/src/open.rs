//! From configuration to backends: parsing `--queue` / `--store` URLs, the
//! backend flags both binaries share, and opening a backend from them. Binaries
//! call these and from then on see only the traits of [`crate::backend`]; their
//! operator commands that belong to one backend go through [`operator`].

pub mod backend_url;
pub mod backends;
pub mod kafka_flags;
pub mod operator;
pub mod store_flags;

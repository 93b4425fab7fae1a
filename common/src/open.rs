//! From configuration to backends: parsing `--queue` / `--store` URLs, the
//! backend flags both binaries share, and opening a backend from them. Binaries
//! call these and from then on see only the traits of [`crate::backend`].

pub mod backend_url;
pub mod backends;
pub mod kafka_flags;
pub mod store_flags;

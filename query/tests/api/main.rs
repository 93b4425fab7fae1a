//! The read API contract (docs/design.md §7), driven over real HTTP against a
//! real server on a SQLite store.
//!
//! Layout:
//! - `auth`: which credentials are refused and how, scopes, routing, headers, health;
//! - `listing`: order, paging, ranges, parameters and cursors;
//! - `rows`: one session's row, integrity, and other organizations' sessions;
//! - `events`: the event stream, byte for byte, merged, gzip, failures;
//! - `slots`: how many streams run at once, per replica and organization, and stalled clients;
//! - `erase`: erasure and its tombstone;
//! - `keys`: the organization's public keys;
//! - `rate_limit`: the per-secret-key window;
//! - `metrics`: what the admin port exports;
//! - `page`: the replay page's files, their headers, and that the committed
//!   build is not stale.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod erase;
mod events;
mod keys;
mod listing;
mod metrics;
mod page;
mod rate_limit;
mod rows;
mod slots;

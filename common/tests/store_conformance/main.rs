//! One conformance suite for every store backend (docs/design.md §1, §4): the same tests,
//! written once against `Arc<dyn Store>`, run against each backend.
//!
//! - SQLite runs in every `cargo test`, on a fresh file in a temporary directory.
//! - ScyllaDB needs a node, so its copies are `#[ignore]`d. Run them with
//!   `docker compose -f deploy/docker-compose.yml up -d scylla` and
//!   `LUCENT_TEST_SCYLLA=127.0.0.1:9042 cargo test -p lucent-common --test store_conformance -- --ignored`.
//!   Each test gets a fresh keyspace made by the schema step, with
//!   NetworkTopologyStrategy (tablets on ScyllaDB 6) and as many replicas per
//!   datacenter as it has nodes, up to 3; the schema step itself is tested in
//!   [`schema`].
//!
//! Times are relative to now: the ScyllaDB store buckets sessions and dead letters
//! by hour and only reads buckets within retention.
//!
//! Listings are read through [`list_all`], which follows cursors with small pages,
//! so every listing test also checks paging.

mod chunks;
mod dead_letters;
mod erasure;
mod keys;
mod listing;
mod reading;
mod schema;
mod secrets;
mod support;

use chunks::*;
use dead_letters::*;
use erasure::*;
use keys::*;
use listing::*;
use reading::*;
use secrets::*;

/// Instantiates every listed test once per backend: `sqlite::<name>` and `scylla::<name>`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = crate::support::SqliteBackend::new();
                    super::$name(backend.store.clone()).await;
                }
            )*
        }

        mod scylla {
            $(
                #[tokio::test]
                #[ignore = "needs a ScyllaDB node: LUCENT_TEST_SCYLLA=host:port cargo test -- --ignored"]
                async fn $name() {
                    let backend = crate::support::ScyllaBackend::connect().await;
                    super::$name(backend.store.clone()).await;
                    backend.finish().await;
                }
            )*
        }
    };
}

conformance!(
    created_keys_load_with_their_org_and_rate_limit_override,
    an_organizations_keys_are_its_own_oldest_first_revoked_included,
    revoking_twice_keeps_the_first_revocation_time,
    revoking_an_unknown_key_returns_false_and_creates_nothing,
    creating_an_existing_key_is_a_permanent_error,
    writing_the_same_chunk_twice_stores_it_once,
    rewriting_a_batch_with_fewer_parts_removes_the_stale_parts,
    read_session_orders_chunks_by_window_then_seq_then_part,
    an_org_never_sees_another_orgs_session_with_the_same_id,
    list_sessions_aggregates_a_session_over_its_chunks,
    listing_filters_and_orders_by_first_receipt_newest_first,
    a_session_with_a_wrong_client_clock_is_listed_by_receipt,
    a_session_received_over_two_days_is_listed_once_with_all_its_chunks,
    paging_lists_every_session_exactly_once,
    sessions_written_between_pages_leave_the_listing_whole,
    a_cursor_the_store_did_not_make_is_a_permanent_error,
    dead_letters_are_listed_newest_first_up_to_the_limit,
    writing_a_dead_letter_again_keeps_one_copy,
    empty_batches_and_expiry_of_nothing_are_harmless,
    a_sessions_summary_reports_gaps_per_window,
    a_session_is_only_found_in_its_own_org,
    read_chunks_pages_one_window_in_seq_then_part_order,
    an_erased_session_is_gone_from_every_read,
    batches_of_an_erased_session_are_dropped,
    erasing_is_idempotent_and_needs_no_session,
    secrets_load_as_created_and_only_as_digests,
    revoking_a_secret_keeps_the_first_time_and_unknown_ids_are_false,
    creating_an_existing_secret_id_is_a_permanent_error,
);

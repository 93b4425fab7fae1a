//! The schema step and the services' check of it, on ScyllaDB only (the SQLite
//! store is one local file that creates and migrates its own tables).

use std::slice::from_ref;

use lucent_common::scylla::schema::{SCHEMA_VERSION, TABLES};
use lucent_common::scylla::store::{
    apply_schema, schema_status, SchemaPlan, ScyllaKeyStore, ScyllaOptions, ScyllaStore,
};

use crate::support::*;

async fn drop_keyspace(node: &str, keyspace: &str) {
    let session = ::scylla::client::session_builder::SessionBuilder::new()
        .known_node(node)
        .build()
        .await
        .expect("the node was reachable a moment ago");
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
        .await
        .expect("dropping the test keyspace");
}

#[tokio::test]
#[ignore = "needs a ScyllaDB node: LUCENT_TEST_SCYLLA=host:port cargo test -- --ignored"]
async fn services_refuse_a_keyspace_without_the_schema_and_create_nothing() {
    let node = scylla_node();
    let keyspace = fresh_keyspace();
    let nodes = from_ref(&node);
    let store = ScyllaStore::connect(nodes, &keyspace, &ScyllaOptions::default()).await;
    let e = store.err().expect("a keyspace without schema is refused");
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("schema apply"), "{e}");
    let keys = ScyllaKeyStore::connect(nodes, &keyspace, &ScyllaOptions::default()).await;
    assert!(keys.is_err());
    // Nothing was created on the way: the keyspace still does not exist.
    assert_eq!(
        schema_status(nodes, &keyspace, &ScyllaOptions::default())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
#[ignore = "needs a ScyllaDB node: LUCENT_TEST_SCYLLA=host:port cargo test -- --ignored"]
async fn applying_the_schema_again_alters_instead_of_creating_and_keeps_the_version() {
    let node = scylla_node();
    let keyspace = fresh_keyspace();
    let first = apply_test_schema(&node, &keyspace).await;
    assert!(first.created_keyspace);
    assert_eq!(first.previous, None);
    assert_eq!(first.created_tables.len(), TABLES.len());
    assert_eq!(first.recorded.version, SCHEMA_VERSION);

    let again = apply_test_schema(&node, &keyspace).await;
    assert!(!again.created_keyspace);
    assert_eq!(again.previous, Some(first.recorded));
    assert!(again.created_tables.is_empty());
    assert_eq!(again.altered_tables.len(), TABLES.len());
    assert_eq!(
        schema_status(from_ref(&node), &keyspace, &ScyllaOptions::default())
            .await
            .unwrap(),
        Some(first.recorded)
    );
    drop_keyspace(&node, &keyspace).await;
}

#[tokio::test]
#[ignore = "needs a ScyllaDB node: LUCENT_TEST_SCYLLA=host:port cargo test -- --ignored"]
async fn a_writer_must_keep_the_retention_the_keyspace_was_sized_for() {
    let node = scylla_node();
    let keyspace = fresh_keyspace();
    apply_test_schema(&node, &keyspace).await;
    let nodes = from_ref(&node);
    let longer = ScyllaOptions {
        ttl_secs: Some(SCYLLA_TEST_RETENTION_SECS * 3),
        ..ScyllaOptions::default()
    };
    let e = ScyllaStore::connect(nodes, &keyspace, &longer)
        .await
        .err()
        .expect("a different retention is refused");
    assert!(e.to_string().contains("schema apply"), "{e}");
    // A reader takes the keyspace's retention.
    ScyllaStore::connect(nodes, &keyspace, &ScyllaOptions::default())
        .await
        .expect("a reader opens with the keyspace's retention");
    // Changing the retention is the schema step's: then the writer is welcome.
    let plan = SchemaPlan {
        replication: production_like_replication(&node).await,
        retention_secs: SCYLLA_TEST_RETENTION_SECS * 3,
    };
    apply_schema(nodes, &keyspace, &ScyllaOptions::default(), &plan)
        .await
        .unwrap();
    ScyllaStore::connect(nodes, &keyspace, &longer)
        .await
        .expect("the writer's retention is the keyspace's now");
    drop_keyspace(&node, &keyspace).await;
}

#[tokio::test]
#[ignore = "needs a ScyllaDB node: LUCENT_TEST_SCYLLA=host:port cargo test -- --ignored"]
async fn migrating_from_version_1_lists_the_existing_keys_by_organization() {
    use lucent_common::backend::key_store::KeyStore;

    let node = scylla_node();
    let keyspace = fresh_keyspace();
    apply_test_schema(&node, &keyspace).await;
    // Make it a version 1 keyspace: keys in `api_keys` only, no list by org.
    let session = ::scylla::client::session_builder::SessionBuilder::new()
        .known_node(&node)
        .build()
        .await
        .expect("the node was reachable a moment ago");
    let record = key_record("org-a", None, now_ms());
    for cql in [
        format!("DROP TABLE {keyspace}.api_keys_by_org"),
        format!(
            "INSERT INTO {keyspace}.api_keys (\"key\", org_id, created_at) VALUES ('{}', 'org-a', {})",
            record.key, record.created_at_ms
        ),
        format!("UPDATE {keyspace}.lucent_schema SET version = 1 WHERE name = 'lucent'"),
    ] {
        session.query_unpaged(cql, ()).await.unwrap();
    }
    let nodes = from_ref(&node);
    let refused = ScyllaKeyStore::connect(nodes, &keyspace, &ScyllaOptions::default()).await;
    assert!(refused
        .err()
        .expect("version 1 is refused")
        .to_string()
        .contains("schema apply"));

    let migrated = apply_test_schema(&node, &keyspace).await;
    assert_eq!(migrated.previous.map(|p| p.version), Some(1));
    assert_eq!(migrated.created_tables, vec!["api_keys_by_org"]);
    assert_eq!(migrated.keys_listed_by_org, Some(1));
    let keys = ScyllaKeyStore::connect(nodes, &keyspace, &ScyllaOptions::default())
        .await
        .unwrap();
    assert_eq!(keys.org_keys("org-a").await.unwrap(), vec![record]);
    drop_keyspace(&node, &keyspace).await;
}

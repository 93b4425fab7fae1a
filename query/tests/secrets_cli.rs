//! `lucent-query secrets …`, run as the built binary against a SQLite store.

use std::process::{Command, Output};

use lucent_common::backend::secret_store::SecretStore;
use lucent_common::domain::secret_key::{Scope, SecretKey};
use lucent_common::sqlite::store::SqliteStore;

fn run(store: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lucent-query"))
        .arg("secrets")
        .args(args)
        .args(["--store", store])
        // The operator's environment must not pick another store.
        .env_remove("LUCENT_STORE")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn listed(store: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let mut full = vec!["list"];
    full.extend(args);
    stdout(&run(store, &full))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn create_prints_only_the_key_list_never_shows_it_and_revoke_revokes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lucent.db");
    let store = format!("sqlite://{}", path.display());

    let created = stdout(&run(
        &store,
        &[
            "create",
            "--org",
            "acme",
            "--scope",
            "admin",
            "--name",
            "support tool",
        ],
    ));
    assert!(
        created.ends_with('\n') && created.lines().count() == 1,
        "{created:?}"
    );
    let key = SecretKey::parse(created.trim()).expect("stdout is exactly the key");
    let other = stdout(&run(
        &store,
        &["create", "--org", "beta", "--scope", "read"],
    ));
    let other = SecretKey::parse(other.trim()).unwrap();

    let all = listed(&store, &[]);
    assert_eq!(all.len(), 2);
    let acme = listed(&store, &["--org", "acme"]);
    assert_eq!(acme.len(), 1);
    let row = &acme[0];
    let id = row["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 16);
    assert!(
        id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{id}"
    );
    assert_eq!(row["org"], "acme");
    assert_eq!(row["scope"], "admin");
    assert_eq!(row["name"], "support tool");
    assert_eq!(row["lastFour"], format!("…{}", key.last_four()));
    assert!(row["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(row["revokedAt"], serde_json::Value::Null);
    let listing = stdout(&run(&store, &["list"]));
    for secret in [&key, &other] {
        assert!(!listing.contains(secret.expose()), "a listing shows a key");
        assert!(
            !listing.contains(&secret.expose()[7..27]),
            "a listing shows most of a key"
        );
    }

    // The store holds the digest, bound to the organization and scope.
    let opened = SqliteStore::open(&path).unwrap();
    let stored = opened.load_secrets().await.unwrap();
    let record = stored.iter().find(|r| r.id == id).unwrap();
    assert!(record.digest.matches(&key.digest()));
    assert_eq!(
        (record.org_id.as_str(), record.scope),
        ("acme", Scope::Admin)
    );

    let revoked = run(&store, &["revoke", &id]);
    stdout(&revoked);
    let row = &listed(&store, &["--org", "acme"])[0];
    assert!(row["revokedAt"].as_str().is_some(), "{row}");
    assert_eq!(
        listed(&store, &["--org", "beta"])[0]["revokedAt"],
        serde_json::Value::Null
    );

    let unknown = run(&store, &["revoke", "0000000000000000"]);
    assert!(!unknown.status.success());
    let message = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        message.contains("no such secret key: 0000000000000000"),
        "{message}"
    );
}

#[test]
fn create_refuses_a_bad_org_or_scope() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("lucent.db").display());
    let bad_org = run(&store, &["create", "--org", "a b", "--scope", "read"]);
    assert!(!bad_org.status.success());
    assert!(bad_org.stdout.is_empty());
    assert!(String::from_utf8_lossy(&bad_org.stderr).contains("bad --org"));
    let bad_scope = run(&store, &["create", "--org", "acme", "--scope", "write"]);
    assert!(!bad_scope.status.success());
    assert!(bad_scope.stdout.is_empty());
}

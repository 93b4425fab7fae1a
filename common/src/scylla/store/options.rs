//! Settings of the ScyllaDB store, and the checks `connect` makes of them.

use super::*;

/// CQL's largest TTL (20 years), in seconds.
pub(super) const MAX_TTL_SECS: u32 = 630_720_000;

/// Settings of the ScyllaDB backend (`--store scylla://host:port[,…]/keyspace`).
#[derive(Debug, Clone)]
pub struct ScyllaOptions {
    /// Replication of the keyspace, as a CQL map literal. Used only when the keyspace
    /// does not exist yet; an existing keyspace is never altered.
    /// Default: `{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}`.
    pub replication: String,
    /// Consistency level of every read and write, by its CQL name: `ONE`,
    /// `LOCAL_ONE`, `TWO`, `THREE`, `QUORUM`, `LOCAL_QUORUM`, `ALL` or `EACH_QUORUM`
    /// (a write-only level: reads then use `LOCAL_QUORUM`, which still sees every
    /// write). Default: `LOCAL_QUORUM`.
    pub consistency: String,
    /// Retention, in seconds: the TTL of every session row (chunks, summaries,
    /// listing, erasure tombstones) and dead letter, counted from when it is
    /// written. 1 to 630 720 000 (CQL's 20-year maximum). Default: 2 592 000
    /// (30 days).
    pub ttl_secs: u32,
    /// Datacenter whose nodes coordinate requests (token-aware within it). Requests
    /// never fail over to other datacenters: there, a `LOCAL_*` consistency level
    /// would count that datacenter's replicas instead. Default: none, every node
    /// is local.
    pub local_dc: Option<String>,
}

impl Default for ScyllaOptions {
    fn default() -> Self {
        ScyllaOptions {
            replication: "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}".into(),
            consistency: "LOCAL_QUORUM".into(),
            ttl_secs: 30 * 24 * 3600,
            local_dc: None,
        }
    }
}

/// Parses a consistency level name as `ScyllaOptions::consistency` documents it
/// (case-insensitive).
pub fn parse_consistency(name: &str) -> Result<Consistency, StoreError> {
    Ok(match name.trim().to_ascii_uppercase().as_str() {
        "ONE" => Consistency::One,
        "TWO" => Consistency::Two,
        "THREE" => Consistency::Three,
        "QUORUM" => Consistency::Quorum,
        "ALL" => Consistency::All,
        "LOCAL_QUORUM" => Consistency::LocalQuorum,
        "EACH_QUORUM" => Consistency::EachQuorum,
        "LOCAL_ONE" => Consistency::LocalOne,
        _ => {
            return Err(StoreError::permanent(format!(
                "unknown consistency level {name:?}: use one of ONE, LOCAL_ONE, TWO, THREE, \
                 QUORUM, LOCAL_QUORUM, ALL, EACH_QUORUM"
            )))
        }
    })
}

/// A keyspace name CQL takes unquoted: a letter, then letters, digits and `_`, 48 at most.
pub(super) fn check_keyspace(keyspace: &str) -> Result<(), StoreError> {
    let mut bytes = keyspace.bytes();
    let valid = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && keyspace.len() <= 48;
    if valid {
        Ok(())
    } else {
        Err(StoreError::permanent(format!(
            "keyspace {keyspace:?} must be a letter followed by at most 47 of [A-Za-z0-9_]"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_defaults_are_the_real_ones() {
        let o = ScyllaOptions::default();
        assert_eq!(
            o.replication,
            "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}"
        );
        assert_eq!(o.consistency, "LOCAL_QUORUM");
        assert_eq!(o.ttl_secs, 2_592_000);
        assert_eq!(o.local_dc, None);
    }

    #[test]
    fn parses_consistency_names_case_insensitively() {
        for (name, level) in [
            ("ONE", Consistency::One),
            ("local_one", Consistency::LocalOne),
            ("QUORUM", Consistency::Quorum),
            ("LOCAL_QUORUM", Consistency::LocalQuorum),
            ("All", Consistency::All),
            ("EACH_QUORUM", Consistency::EachQuorum),
        ] {
            assert_eq!(parse_consistency(name).unwrap(), level, "{name}");
        }
        for bad in ["ANY", "SERIAL", "LOCAL_SERIAL", "", "quorums"] {
            assert!(!parse_consistency(bad).unwrap_err().is_retryable(), "{bad}");
        }
    }

    #[test]
    fn keyspace_names_must_be_plain_cql_identifiers() {
        assert!(check_keyspace("lucent").is_ok());
        assert!(check_keyspace("Lucent_test_01").is_ok());
        for bad in ["", "1lucent", "_x", "a-b", "a;DROP", &"a".repeat(49)] {
            assert!(check_keyspace(bad).is_err(), "{bad}");
        }
    }
}

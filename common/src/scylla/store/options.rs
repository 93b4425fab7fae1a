//! Settings of the ScyllaDB store, and the checks `connect` makes of them.

use super::*;

/// CQL's largest TTL (20 years), in seconds.
pub(super) const MAX_TTL_SECS: u32 = 630_720_000;

/// How to reach and use a ScyllaDB cluster (`--store scylla://host:port[,…]/keyspace`).
/// How the keyspace is laid out is the schema step's ([`SchemaPlan`]).
#[derive(Debug, Clone)]
pub struct ScyllaOptions {
    /// Consistency level of every read and write, by its CQL name: `ONE`,
    /// `LOCAL_ONE`, `TWO`, `THREE`, `QUORUM`, `LOCAL_QUORUM`, `ALL` or `EACH_QUORUM`
    /// (a write-only level: reads then use `LOCAL_QUORUM`, which still sees every
    /// write). Levels that cannot read what was written on this keyspace's
    /// replication are refused at connect. Default: `LOCAL_QUORUM`.
    pub consistency: String,
    /// Retention this process writes with, in seconds: the TTL of every session
    /// row (chunks, summaries, listing, erasure tombstones) and dead letter. It
    /// must be the retention the schema step sized the keyspace for (a process
    /// set to keep 90 days on tables compacted for 30 is refused). None: the
    /// keyspace's, for processes that only read. Default: None.
    pub ttl_secs: Option<u32>,
    /// Datacenter whose nodes coordinate requests (token-aware within it). Requests
    /// never fail over to other datacenters: there, a `LOCAL_*` consistency level
    /// would count that datacenter's replicas instead. Required with `LOCAL_*`
    /// levels on a cluster of several datacenters. Default: none, every node
    /// is local.
    pub local_dc: Option<String>,
    /// User name and password for clusters with authentication. Default: none.
    pub credentials: Option<Credentials>,
    /// TLS for every connection. Default: none (plain TCP).
    pub tls: Option<TlsOptions>,
    /// Sends credentials over plain TCP, where anyone on the path can read them.
    /// Refused unless set. Default: false.
    pub allow_plaintext_credentials: bool,
}

impl Default for ScyllaOptions {
    fn default() -> Self {
        ScyllaOptions {
            consistency: "LOCAL_QUORUM".into(),
            ttl_secs: None,
            local_dc: None,
            credentials: None,
            tls: None,
            allow_plaintext_credentials: false,
        }
    }
}

/// A user name and password. `Debug` leaves the password out, so that options
/// can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// How the schema step lays out the keyspace.
#[derive(Debug, Clone)]
pub struct SchemaPlan {
    /// Replication of the keyspace, as a CQL map literal. Used only when the
    /// keyspace does not exist yet; an existing keyspace is never altered.
    /// Default: `{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}`.
    pub replication: String,
    /// Retention the tables are sized for, in seconds: their default TTL and
    /// compaction windows. 1 to 630 720 000 (CQL's 20-year maximum).
    /// Default: 2 592 000 (30 days).
    pub retention_secs: u32,
}

impl Default for SchemaPlan {
    fn default() -> Self {
        SchemaPlan {
            replication: "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}".into(),
            retention_secs: 30 * 24 * 3600,
        }
    }
}

/// A retention CQL can express as a TTL.
pub(crate) fn check_retention(secs: u32) -> Result<(), StoreError> {
    if secs == 0 || secs > MAX_TTL_SECS {
        return Err(StoreError::permanent(format!(
            "retention of {secs} s must be between 1 s and {MAX_TTL_SECS} s (20 years)"
        )));
    }
    Ok(())
}

/// A replication map as CQL takes it, and nothing else (it is spliced into DDL).
pub(crate) fn check_replication(replication: &str) -> Result<&str, StoreError> {
    let replication = replication.trim();
    if !(replication.starts_with('{') && replication.ends_with('}')) || replication.contains(';') {
        return Err(StoreError::permanent(format!(
            "replication {replication:?} must be a CQL map literal, e.g. \
             {{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}}"
        )));
    }
    Ok(replication)
}

/// Credentials and TLS that fit together: credentials go over TLS, or the
/// operator said they may not.
pub(crate) fn check_transport(options: &ScyllaOptions) -> Result<(), StoreError> {
    if options.credentials.is_some()
        && options.tls.is_none()
        && !options.allow_plaintext_credentials
    {
        return Err(StoreError::permanent(
            "refusing to send ScyllaDB credentials over plain TCP: enable TLS \
             (--scylla-tls) or allow it (--scylla-allow-plaintext-credentials)",
        ));
    }
    Ok(())
}

/// How a keyspace is replicated, as the driver's metadata reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Replication {
    /// `SimpleStrategy`: this many replicas, wherever they are.
    Simple(usize),
    /// `NetworkTopologyStrategy`: replicas per datacenter.
    PerDatacenter(std::collections::BTreeMap<String, usize>),
    /// Something else (`LocalStrategy`, a custom class): not checked.
    Other,
}

/// Whether reads at `read` see every write acknowledged at `write`, with
/// requests coordinated in `local_dc` (or anywhere), on a cluster of
/// `datacenters` with `replication`. They do when the replicas a write waits for
/// and those a read asks overlap: `W + R > N` for the replicas `N` the levels
/// count, and for `LOCAL_*` levels only when every request counts the same
/// datacenter.
pub(crate) fn check_read_your_writes(
    write: Consistency,
    read: Consistency,
    local_dc: Option<&str>,
    datacenters: &std::collections::BTreeSet<String>,
    replication: &Replication,
) -> Result<(), String> {
    if let Some(dc) = local_dc {
        if !datacenters.contains(dc) {
            return Err(format!(
                "local datacenter {dc:?} has no nodes; the cluster's datacenters are {datacenters:?}"
            ));
        }
    }
    let is_local = |c| matches!(c, Consistency::LocalOne | Consistency::LocalQuorum);
    let local = is_local(write) || is_local(read);
    if local && local_dc.is_none() && datacenters.len() > 1 {
        return Err(format!(
            "consistency {write:?} counts the replicas of whichever datacenter coordinates a \
             request, and with no local datacenter set a read may be coordinated in another \
             one than the write it should see: set --scylla-local-dc to one of {datacenters:?}"
        ));
    }
    // The replicas a level counts: the local datacenter's for LOCAL_*, else all.
    let (local_rf, total_rf) = match replication {
        Replication::Other => return Ok(()),
        Replication::Simple(rf) => (*rf, *rf),
        Replication::PerDatacenter(rfs) => {
            let total = rfs.values().sum();
            let local = match (local_dc, rfs.len()) {
                (Some(dc), _) => rfs.get(dc).copied().unwrap_or(0),
                (None, 1) => total,
                (None, _) => total,
            };
            (local, total)
        }
    };
    let n = if local { local_rf } else { total_rf };
    if n == 0 {
        return Err(format!(
            "the keyspace has no replicas in the local datacenter {:?}",
            local_dc.unwrap_or_default()
        ));
    }
    let counted = |c: Consistency| match c {
        Consistency::One | Consistency::LocalOne => 1,
        Consistency::Two => 2,
        Consistency::Three => 3,
        Consistency::Quorum | Consistency::LocalQuorum | Consistency::EachQuorum => n / 2 + 1,
        _ => n,
    };
    let (w, r) = (counted(write), counted(read));
    if w + r <= n {
        return Err(format!(
            "consistency {write:?} for writes and {read:?} for reads wait for {w} and {r} of \
             {n} replicas, so a read may miss an acknowledged write: use QUORUM or \
             LOCAL_QUORUM (with --scylla-local-dc on several datacenters)"
        ));
    }
    Ok(())
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

/// The consistency levels of writes and reads that `options` ask for.
pub(crate) fn consistency_levels(
    options: &ScyllaOptions,
) -> Result<(Consistency, Consistency), StoreError> {
    let write = parse_consistency(&options.consistency)?;
    let read = match write {
        // EACH_QUORUM is for writes only; a local quorum overlaps every datacenter's
        // write quorum, so reads still see every acknowledged write.
        Consistency::EachQuorum => Consistency::LocalQuorum,
        other => other,
    };
    Ok((write, read))
}

/// A keyspace name CQL takes unquoted: a letter, then letters, digits and `_`,
/// 48 at most. CQL folds unquoted names to lower case, and the cluster's
/// metadata names the keyspace so, so the name is returned folded.
pub(super) fn check_keyspace(keyspace: &str) -> Result<String, StoreError> {
    let mut bytes = keyspace.bytes();
    let valid = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && keyspace.len() <= 48;
    if valid {
        Ok(keyspace.to_ascii_lowercase())
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
        assert_eq!(o.consistency, "LOCAL_QUORUM");
        assert_eq!(o.ttl_secs, None);
        assert_eq!(o.local_dc, None);
        assert!(o.credentials.is_none() && o.tls.is_none() && !o.allow_plaintext_credentials);
        let plan = SchemaPlan::default();
        assert_eq!(
            plan.replication,
            "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}"
        );
        assert_eq!(plan.retention_secs, 2_592_000);
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
    fn each_quorum_writes_read_at_local_quorum_and_other_levels_read_at_themselves() {
        let at = |level: &str| ScyllaOptions {
            consistency: level.into(),
            ..ScyllaOptions::default()
        };
        assert_eq!(
            consistency_levels(&at("EACH_QUORUM")).unwrap(),
            (Consistency::EachQuorum, Consistency::LocalQuorum)
        );
        assert_eq!(
            consistency_levels(&at("quorum")).unwrap(),
            (Consistency::Quorum, Consistency::Quorum)
        );
        assert!(consistency_levels(&at("SERIAL")).is_err());
    }

    #[test]
    fn keyspace_names_must_be_plain_cql_identifiers() {
        assert!(check_keyspace("lucent").is_ok());
        assert_eq!(check_keyspace("Lucent_test_01").unwrap(), "lucent_test_01");
        for bad in ["", "1lucent", "_x", "a-b", "a;DROP", &"a".repeat(49)] {
            assert!(check_keyspace(bad).is_err(), "{bad}");
        }
    }

    fn dcs(names: &[&str]) -> std::collections::BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn per_dc(rfs: &[(&str, usize)]) -> Replication {
        Replication::PerDatacenter(rfs.iter().map(|(d, rf)| (d.to_string(), *rf)).collect())
    }

    #[test]
    fn quorum_levels_read_their_writes_on_one_datacenter() {
        let one = dcs(&["dc1"]);
        let rf3 = per_dc(&[("dc1", 3)]);
        use Consistency::*;
        for level in [LocalQuorum, Quorum, All] {
            assert_eq!(
                check_read_your_writes(level, level, None, &one, &rf3),
                Ok(()),
                "{level:?}"
            );
        }
        assert_eq!(
            check_read_your_writes(EachQuorum, LocalQuorum, None, &one, &rf3),
            Ok(())
        );
        assert_eq!(check_read_your_writes(Two, Two, None, &one, &rf3), Ok(()));
        // A development node with one replica reads its writes at any level.
        let rf1 = Replication::Simple(1);
        assert_eq!(check_read_your_writes(One, One, None, &one, &rf1), Ok(()));
        assert_eq!(
            check_read_your_writes(LocalOne, LocalOne, None, &one, &Replication::Other),
            Ok(())
        );
    }

    #[test]
    fn levels_whose_replicas_need_not_overlap_are_refused() {
        use Consistency::*;
        let one = dcs(&["dc1"]);
        let rf3 = per_dc(&[("dc1", 3)]);
        for level in [One, LocalOne] {
            let e = check_read_your_writes(level, level, None, &one, &rf3).unwrap_err();
            assert!(e.contains("1 and 1 of 3 replicas"), "{e}");
        }
        let rf5 = Replication::Simple(5);
        assert!(check_read_your_writes(Two, Two, None, &one, &rf5).is_err());
        assert_eq!(
            check_read_your_writes(Three, Three, None, &one, &rf5),
            Ok(())
        );
    }

    #[test]
    fn local_levels_on_several_datacenters_need_a_local_datacenter() {
        use Consistency::*;
        let two = dcs(&["eu", "us"]);
        let rf = per_dc(&[("eu", 3), ("us", 3)]);
        let e = check_read_your_writes(LocalQuorum, LocalQuorum, None, &two, &rf).unwrap_err();
        assert!(e.contains("--scylla-local-dc"), "{e}");
        assert_eq!(
            check_read_your_writes(LocalQuorum, LocalQuorum, Some("eu"), &two, &rf),
            Ok(())
        );
        // QUORUM counts every datacenter's replicas: 4 of 6 twice overlap.
        assert_eq!(
            check_read_your_writes(Quorum, Quorum, None, &two, &rf),
            Ok(())
        );
        let e =
            check_read_your_writes(LocalQuorum, LocalQuorum, Some("ap"), &two, &rf).unwrap_err();
        assert!(e.contains("has no nodes"), "{e}");
        let only_us = per_dc(&[("us", 3)]);
        let e = check_read_your_writes(LocalQuorum, LocalQuorum, Some("eu"), &two, &only_us)
            .unwrap_err();
        assert!(e.contains("no replicas in the local datacenter"), "{e}");
    }

    #[test]
    fn credentials_need_tls_unless_allowed_and_never_show_the_password() {
        let mut o = ScyllaOptions {
            credentials: Some(Credentials {
                username: "lucent".into(),
                password: "hunter2".into(),
            }),
            ..ScyllaOptions::default()
        };
        let e = check_transport(&o).unwrap_err();
        assert!(e.to_string().contains("--scylla-tls"), "{e}");
        o.allow_plaintext_credentials = true;
        assert!(check_transport(&o).is_ok());
        o.allow_plaintext_credentials = false;
        o.tls = Some(TlsOptions::default());
        assert!(check_transport(&o).is_ok());
        assert!(!format!("{o:?}").contains("hunter2"));
    }

    #[test]
    fn retention_and_replication_are_checked_before_they_reach_cql() {
        assert!(check_retention(0).is_err());
        assert!(check_retention(MAX_TTL_SECS + 1).is_err());
        assert!(check_retention(86_400).is_ok());
        assert!(check_replication("{'class': 'SimpleStrategy', 'replication_factor': 1}").is_ok());
        assert!(check_replication("{'a': 1}; DROP KEYSPACE x").is_err());
        assert!(check_replication("SimpleStrategy").is_err());
    }
}

//! The schema step (`lucent-consumer schema apply`): creates the keyspace and
//! tables, or brings an existing keyspace to this build's [`SCHEMA_VERSION`]
//! and the retention asked for, then records both in `lucent_schema`. Run once
//! per release with a role that may CREATE and ALTER; the services need only
//! SELECT and MODIFY (module doc of [`crate::scylla::schema`]).
//!
//! Every statement is idempotent, so a step that fails halfway is run again.
//! The version row is written last: a keyspace the step did not finish is one
//! the services refuse.

use super::*;

/// What the schema step found, and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaReport {
    pub keyspace: String,
    /// The keyspace did not exist and was created with the plan's replication.
    pub created_keyspace: bool,
    /// What `lucent_schema` held before (None: nothing, a new or unversioned keyspace).
    pub previous: Option<RecordedSchema>,
    pub created_tables: Vec<&'static str>,
    /// Existing tables whose default TTL and compaction were set to the plan's retention.
    pub altered_tables: Vec<&'static str>,
    /// Tables of earlier layouts still in the keyspace ([`OBSOLETE_TABLES`]).
    pub obsolete_tables: Vec<&'static str>,
    /// Keys of an earlier schema copied into `api_keys_by_org` (None: none to copy).
    pub keys_listed_by_org: Option<u64>,
    /// What `lucent_schema` holds now.
    pub recorded: RecordedSchema,
}

impl std::fmt::Display for SchemaReport {
    /// What an operator reads after the step: one fact a line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keyspace = &self.keyspace;
        match self.previous {
            None if self.created_keyspace => writeln!(f, "created keyspace {keyspace}")?,
            None => writeln!(f, "keyspace {keyspace} had no recorded schema version")?,
            Some(p) => writeln!(
                f,
                "keyspace {keyspace} had schema version {} for {} s of retention",
                p.version, p.retention_secs
            )?,
        }
        if !self.created_tables.is_empty() {
            writeln!(f, "created tables: {}", self.created_tables.join(", "))?;
        }
        if !self.altered_tables.is_empty() {
            writeln!(
                f,
                "set TTL and compaction of: {}",
                self.altered_tables.join(", ")
            )?;
        }
        if let Some(keys) = self.keys_listed_by_org {
            writeln!(
                f,
                "listed {keys} existing keys by organization in {}",
                API_KEYS_BY_ORG.name
            )?;
        }
        for table in &self.obsolete_tables {
            writeln!(
                f,
                "table {keyspace}.{table} is no longer used: DROP TABLE it once nothing in it is needed"
            )?;
        }
        write!(
            f,
            "keyspace {keyspace} is at schema version {} for {} s ({} days) of retention; \
             the consumer and lucent-query must keep the same retention",
            self.recorded.version,
            self.recorded.retention_secs,
            self.recorded.retention_secs / 86_400
        )
    }
}

/// The CQL the schema step runs on a cluster without the keyspace, in order:
/// for operators who review DDL or run it themselves (then they also write the
/// version row, the last statement).
pub fn schema_cql(keyspace: &str, plan: &SchemaPlan) -> Result<Vec<String>, StoreError> {
    let keyspace = &check_keyspace(keyspace)?;
    let replication = check_replication(&plan.replication)?;
    check_retention(plan.retention_secs)?;
    let mut cql = vec![create_keyspace(keyspace, replication)];
    cql.extend(
        TABLES
            .iter()
            .map(|table| table.create(keyspace, plan.retention_secs)),
    );
    cql.push(format!(
        "INSERT INTO {keyspace}.{} (name, version, retention_secs, applied_at_ms) \
         VALUES ('{SCHEMA_ROW}', {SCHEMA_VERSION}, {}, {})",
        LUCENT_SCHEMA.name,
        plan.retention_secs,
        SystemClock.now_ms()
    ));
    Ok(cql)
}

/// Creates or migrates `keyspace` to this build's schema, sized for
/// `plan.retention_secs`. Refuses a keyspace a newer release has migrated.
pub async fn apply_schema(
    nodes: &[String],
    keyspace: &str,
    options: &ScyllaOptions,
    plan: &SchemaPlan,
) -> Result<SchemaReport, StoreError> {
    let keyspace = &check_keyspace(keyspace)?;
    let replication = check_replication(&plan.replication)?;
    check_retention(plan.retention_secs)?;
    let session = cql::open_session(nodes, options, Consistency::Quorum).await?;
    let state = session.get_cluster_state();
    let existing = state.get_keyspace(keyspace);
    let previous = match existing {
        Some(ks) if ks.tables.contains_key(LUCENT_SCHEMA.name) => {
            cql::recorded_schema(&session, keyspace, Consistency::Quorum).await?
        }
        _ => None,
    };
    if let Some(previous) = previous.filter(|p| p.version > SCHEMA_VERSION) {
        return Err(StoreError::permanent(format!(
            "keyspace {keyspace} has schema version {}, newer than this build's \
             {SCHEMA_VERSION}: apply the schema with the release that migrated it",
            previous.version
        )));
    }
    let created_keyspace = existing.is_none();
    let existing_tables: BTreeSet<String> = existing
        .map(|ks| ks.tables.keys().cloned().collect())
        .unwrap_or_default();
    let obsolete_tables = OBSOLETE_TABLES
        .into_iter()
        .filter(|t| existing_tables.contains(*t))
        .collect();
    drop(state);

    if created_keyspace {
        run_ddl(
            &session,
            create_keyspace(keyspace, replication),
            "creating the keyspace",
        )
        .await?;
    }
    let (mut created_tables, mut altered_tables) = (Vec::new(), Vec::new());
    for table in TABLES {
        if existing_tables.contains(table.name) {
            run_ddl(
                &session,
                table.alter(keyspace, plan.retention_secs),
                "altering a table",
            )
            .await?;
            altered_tables.push(table.name);
        } else {
            run_ddl(
                &session,
                table.create(keyspace, plan.retention_secs),
                "creating a table",
            )
            .await?;
            created_tables.push(table.name);
        }
    }
    session
        .await_schema_agreement()
        .await
        // Nodes that have not caught up yet, or metadata not readable yet: both
        // clear up, and the step is run again.
        .map_err(|e| StoreError::unavailable_from("waiting for schema agreement", e))?;
    session
        .refresh_metadata()
        .await
        .map_err(|e| StoreError::unavailable_from("reading the new schema", e))?;

    // Version 2 added `api_keys_by_org`: the keys written before it are copied
    // in. Copying again is harmless, so a step that failed halfway just reruns.
    let keys_listed_by_org = if existing_tables.contains(API_KEYS.name)
        && previous.is_none_or(|p| p.version < 2)
    {
        Some(list_keys_by_org(&session, keyspace, every_dc_consistency(&session, keyspace)).await?)
    } else {
        None
    };

    let recorded = RecordedSchema {
        version: SCHEMA_VERSION,
        retention_secs: plan.retention_secs,
    };
    let mut insert = Statement::new(format!(
        "INSERT INTO {keyspace}.{} (name, version, retention_secs, applied_at_ms) \
         VALUES (?, ?, ?, ?)",
        LUCENT_SCHEMA.name
    ));
    insert.set_is_idempotent(true);
    insert.set_consistency(every_dc_consistency(&session, keyspace));
    session
        .query_unpaged(
            insert,
            (
                SCHEMA_ROW,
                recorded.version,
                i32::try_from(recorded.retention_secs).unwrap_or(i32::MAX),
                to_i64(SystemClock.now_ms()),
            ),
        )
        .await
        .map_err(fail("recording the schema version"))?;
    Ok(SchemaReport {
        keyspace: keyspace.to_string(),
        created_keyspace,
        previous,
        created_tables,
        altered_tables,
        obsolete_tables,
        keys_listed_by_org,
        recorded,
    })
}

/// A quorum in every datacenter, so that a service reading at LOCAL_QUORUM
/// anywhere (or QUORUM) sees the step's writes. EACH_QUORUM needs
/// NetworkTopologyStrategy.
fn every_dc_consistency(session: &Session, keyspace: &str) -> Consistency {
    let every_dc = session
        .get_cluster_state()
        .get_keyspace(keyspace)
        .is_some_and(|ks| matches!(ks.strategy, Strategy::NetworkTopologyStrategy { .. }));
    if every_dc {
        Consistency::EachQuorum
    } else {
        Consistency::Quorum
    }
}

/// Copies every key of `api_keys` into `api_keys_by_org`, page by page (the
/// one full read of `api_keys` outside the ingest replicas' key tables, once
/// per migration). Rows without an organization are left out, as every read
/// leaves them out. Returns how many keys were copied.
async fn list_keys_by_org(
    session: &Session,
    keyspace: &str,
    consistency: Consistency,
) -> Result<u64, StoreError> {
    const WHAT: &str = "copying api_keys into api_keys_by_org";
    let mut select = Statement::new(format!(
        r#"SELECT "key", org_id FROM {keyspace}.{}"#,
        API_KEYS.name
    ));
    select.set_consistency(Consistency::Quorum);
    let mut insert = session
        .prepare(format!(
            r#"INSERT INTO {keyspace}.{} (org_id, "key") VALUES (?, ?)"#,
            API_KEYS_BY_ORG.name
        ))
        .await
        .map_err(fail(WHAT))?;
    insert.set_consistency(consistency);
    insert.set_is_idempotent(true);
    let mut rows = session
        .query_iter(select, ())
        .await
        .map_err(fail(WHAT))?
        .rows_stream::<(String, Option<String>)>()
        .map_err(fail(WHAT))?;
    let mut copied = 0;
    while let Some((key, org_id)) = rows.try_next().await.map_err(fail(WHAT))? {
        let Some(org_id) = org_id else { continue };
        cql::execute(session, &insert, (org_id, key), WHAT).await?;
        copied += 1;
    }
    Ok(copied)
}

/// What `lucent_schema` of `keyspace` holds, without changing anything (None:
/// no keyspace, or no schema in it).
pub async fn schema_status(
    nodes: &[String],
    keyspace: &str,
    options: &ScyllaOptions,
) -> Result<Option<RecordedSchema>, StoreError> {
    let keyspace = &check_keyspace(keyspace)?;
    let (_, read) = consistency_levels(options)?;
    let session = cql::open_session(nodes, options, read).await?;
    let has_table = session
        .get_cluster_state()
        .get_keyspace(keyspace)
        .is_some_and(|ks| ks.tables.contains_key(LUCENT_SCHEMA.name));
    if !has_table {
        return Ok(None);
    }
    cql::recorded_schema(&session, keyspace, read).await
}

fn create_keyspace(keyspace: &str, replication: &str) -> String {
    format!("CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}")
}

async fn run_ddl(session: &Session, cql: String, what: &'static str) -> Result<(), StoreError> {
    let mut statement = Statement::new(cql);
    statement.set_is_idempotent(true);
    session
        .query_unpaged(statement, ())
        .await
        .map_err(fail(what))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_schema_creates_the_keyspace_then_every_table_then_the_version() {
        let plan = SchemaPlan {
            replication: "{'class': 'NetworkTopologyStrategy', 'dc1': 3}".into(),
            retention_secs: 7 * 86_400,
        };
        let cql = schema_cql("lucent_prod", &plan).unwrap();
        assert_eq!(
            cql[0],
            "CREATE KEYSPACE IF NOT EXISTS lucent_prod WITH replication = \
             {'class': 'NetworkTopologyStrategy', 'dc1': 3}"
        );
        assert_eq!(cql.len(), TABLES.len() + 2);
        for (table, ddl) in TABLES.iter().zip(&cql[1..]) {
            assert!(
                ddl.starts_with(&format!(
                    "CREATE TABLE IF NOT EXISTS lucent_prod.{} (",
                    table.name
                )),
                "{ddl}"
            );
        }
        let version = cql.last().unwrap();
        assert!(
            version.starts_with(&format!(
                "INSERT INTO lucent_prod.lucent_schema (name, version, retention_secs, applied_at_ms) \
                 VALUES ('lucent', {SCHEMA_VERSION}, 604800, "
            )),
            "{version}"
        );
    }

    #[test]
    fn the_report_says_what_changed_and_what_to_keep_in_step() {
        let report = SchemaReport {
            keyspace: "lucent".into(),
            created_keyspace: false,
            previous: Some(RecordedSchema {
                version: 1,
                retention_secs: 30 * 86_400,
            }),
            created_tables: vec!["api_keys_by_org"],
            altered_tables: vec!["api_keys", "sessions"],
            obsolete_tables: vec!["sessions_by_hour"],
            keys_listed_by_org: Some(3),
            recorded: RecordedSchema {
                version: 2,
                retention_secs: 90 * 86_400,
            },
        };
        assert_eq!(
            report.to_string(),
            "keyspace lucent had schema version 1 for 2592000 s of retention\n\
             created tables: api_keys_by_org\n\
             set TTL and compaction of: api_keys, sessions\n\
             listed 3 existing keys by organization in api_keys_by_org\n\
             table lucent.sessions_by_hour is no longer used: DROP TABLE it once nothing in it is needed\n\
             keyspace lucent is at schema version 2 for 7776000 s (90 days) of retention; \
             the consumer and lucent-query must keep the same retention"
        );
    }

    #[test]
    fn the_printed_schema_refuses_what_would_not_be_valid_cql() {
        let plan = SchemaPlan::default();
        assert!(schema_cql("bad-name", &plan).is_err());
        let injected = SchemaPlan {
            replication: "{'class': 'SimpleStrategy'}; DROP KEYSPACE lucent".into(),
            ..SchemaPlan::default()
        };
        assert!(schema_cql("lucent", &injected).is_err());
        let forever = SchemaPlan {
            retention_secs: 0,
            ..SchemaPlan::default()
        };
        assert!(schema_cql("lucent", &forever).is_err());
    }
}

//! Talking to the cluster, the same way for the whole store and for the key
//! store alone: connecting with the configured routing and consistency,
//! creating the keyspace and tables, preparing statements and running them.

use super::*;

/// A session switched to its keyspace, the consistency levels of writes and
/// reads, and the keyspace's schema as the schema step recorded it.
pub(crate) struct Cluster {
    pub(crate) session: Arc<Session>,
    pub(crate) write: Consistency,
    pub(crate) read: Consistency,
    pub(crate) schema: RecordedSchema,
}

/// Connects to the cluster through `nodes` (`host:port`) as a service does:
/// checks that `keyspace` has this build's schema and that the consistency
/// levels read what they write on its replication, then switches to it. Never
/// creates or alters anything (the schema step does, [`apply_schema`]).
pub(crate) async fn connect(
    nodes: &[String],
    keyspace: &str,
    options: &ScyllaOptions,
) -> Result<Cluster, StoreError> {
    let keyspace = &check_keyspace(keyspace)?;
    let (write, read) = consistency_levels(options)?;
    let session = open_session(nodes, options, write).await?;
    let state = session.get_cluster_state();
    let Some(metadata) = state.get_keyspace(keyspace) else {
        return Err(StoreError::permanent(
            check_recorded(keyspace, None).unwrap_err(),
        ));
    };
    let datacenters = state
        .get_nodes_info()
        .iter()
        .filter_map(|node| node.datacenter.clone())
        .collect();
    check_read_your_writes(
        write,
        read,
        options.local_dc.as_deref(),
        &datacenters,
        &replication_of(&metadata.strategy),
    )
    .map_err(|e| StoreError::permanent(format!("keyspace {keyspace}: {e}")))?;
    let has_schema_table = metadata.tables.contains_key(LUCENT_SCHEMA.name);
    session
        .use_keyspace(keyspace, false)
        .await
        .map_err(fail("switching to the keyspace"))?;
    let recorded = if has_schema_table {
        recorded_schema(&session, keyspace, read).await?
    } else {
        None
    };
    let schema = check_recorded(keyspace, recorded).map_err(StoreError::permanent)?;
    Ok(Cluster {
        session: Arc::new(session),
        write,
        read,
        schema,
    })
}

/// A session to the cluster through `nodes`, with the configured routing,
/// consistency, credentials and TLS, switched to no keyspace.
pub(crate) async fn open_session(
    nodes: &[String],
    options: &ScyllaOptions,
    consistency: Consistency,
) -> Result<Session, StoreError> {
    check_transport(options)?;
    let mut policy = DefaultPolicy::builder().token_aware(true);
    if let Some(dc) = &options.local_dc {
        policy = policy.prefer_datacenter(dc.clone());
    }
    let profile = ExecutionProfile::builder()
        .consistency(consistency)
        .load_balancing_policy(policy.build())
        .build();
    let mut builder = SessionBuilder::new()
        .known_nodes(nodes)
        .default_execution_profile_handle(profile.into_handle())
        // Client-side, per-process monotonic write timestamps: a later write of this
        // process (a rewrite of a batch with fewer parts) always supersedes an earlier
        // one, whichever coordinator each went through.
        .timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()));
    if let Some(credentials) = &options.credentials {
        builder = builder.user(&credentials.username, &credentials.password);
    }
    if let Some(tls) = &options.tls {
        builder = builder.tls_context(Some(tls_context(tls)?));
    }
    builder
        .build()
        .await
        .map_err(fail("connecting to ScyllaDB"))
}

/// The keyspace's replication as [`check_read_your_writes`] takes it.
fn replication_of(strategy: &Strategy) -> Replication {
    match strategy {
        Strategy::SimpleStrategy { replication_factor } => Replication::Simple(*replication_factor),
        Strategy::NetworkTopologyStrategy {
            datacenter_repfactors,
        } => Replication::PerDatacenter(
            datacenter_repfactors
                .iter()
                .map(|(dc, rf)| (dc.clone(), *rf))
                .collect(),
        ),
        _ => Replication::Other,
    }
}

/// The `lucent_schema` row of `keyspace`, if it has one.
pub(crate) async fn recorded_schema(
    session: &Session,
    keyspace: &str,
    consistency: Consistency,
) -> Result<Option<RecordedSchema>, StoreError> {
    let mut select = Statement::new(format!(
        "SELECT version, retention_secs FROM {keyspace}.{} WHERE name = ?",
        LUCENT_SCHEMA.name
    ));
    select.set_is_idempotent(true);
    // The schema step writes it at ALL, so any replica has it.
    select.set_consistency(consistency);
    let row = session
        .query_unpaged(select, (SCHEMA_ROW,))
        .await
        .map_err(fail("reading the schema version"))?
        .into_rows_result()
        .map_err(fail("reading the schema version"))?
        .maybe_first_row::<(Option<i32>, Option<i32>)>()
        .map_err(fail("reading the schema version"))?;
    Ok(row.map(|(version, retention)| RecordedSchema {
        version: version.unwrap_or(0),
        retention_secs: retention.and_then(|r| u32::try_from(r).ok()).unwrap_or(0),
    }))
}

/// Prepares an idempotent statement (all of ours are) at `consistency`.
pub(crate) async fn prepare(
    session: &Session,
    cql: &'static str,
    consistency: Consistency,
    page_rows: Option<i32>,
) -> Result<PreparedStatement, StoreError> {
    let mut statement = session.prepare(cql).await.map_err(|e| {
        // Name the statement: a failure here is usually a table of another shape.
        let cql = cql.split_whitespace().collect::<Vec<_>>().join(" ");
        to_store_error(format!("preparing `{cql}`"), e)
    })?;
    statement.set_consistency(consistency);
    statement.set_is_idempotent(true);
    if let Some(rows) = page_rows {
        statement.set_page_size(rows);
    }
    Ok(statement)
}

/// Every row `statement` returns, page by page.
pub(crate) async fn query_all<R>(
    session: &Session,
    statement: &PreparedStatement,
    values: impl SerializeRow,
    what: &'static str,
) -> Result<Vec<R>, StoreError>
where
    R: for<'frame, 'metadata> DeserializeRowTrait<'frame, 'metadata>,
{
    let mut rows = session
        .execute_iter(statement.clone(), values)
        .await
        .map_err(fail(what))?
        .rows_stream::<R>()
        .map_err(fail(what))?;
    let mut out = Vec::new();
    while let Some(row) = rows.try_next().await.map_err(fail(what))? {
        out.push(row);
    }
    Ok(out)
}

/// The first row `statement` returns, if any.
pub(crate) async fn query_one<R>(
    session: &Session,
    statement: &PreparedStatement,
    values: impl SerializeRow,
    what: &'static str,
) -> Result<Option<R>, StoreError>
where
    R: for<'frame, 'metadata> DeserializeRowTrait<'frame, 'metadata>,
{
    session
        .execute_unpaged(statement, values)
        .await
        .map_err(fail(what))?
        .into_rows_result()
        .map_err(fail(what))?
        .maybe_first_row::<R>()
        .map_err(fail(what))
}

/// Runs one write (or a read whose rows nobody needs).
pub(crate) async fn execute(
    session: &Session,
    statement: &PreparedStatement,
    values: impl SerializeRow,
    what: &'static str,
) -> Result<(), StoreError> {
    session
        .execute_unpaged(statement, values)
        .await
        .map_err(fail(what))?;
    Ok(())
}

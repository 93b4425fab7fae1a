//! Talking to the cluster, the same way for the whole store and for the key
//! store alone: connecting with the configured routing and consistency,
//! creating the keyspace and tables, preparing statements and running them.

use super::*;

/// A session switched to its keyspace, and the consistency levels of writes and reads.
pub(crate) struct Cluster {
    pub(crate) session: Arc<Session>,
    pub(crate) write: Consistency,
    pub(crate) read: Consistency,
}

/// Connects to the cluster through `nodes` (`host:port`), creates `keyspace`
/// if absent (with `options.replication`), switches to it and creates `tables`
/// (`CREATE TABLE IF NOT EXISTS` statements) in it. `options.ttl_secs` is not
/// used: retention is the caller's.
pub(crate) async fn connect(
    nodes: &[String],
    keyspace: &str,
    options: &ScyllaOptions,
    tables: impl IntoIterator<Item = &'static str>,
) -> Result<Cluster, StoreError> {
    check_keyspace(keyspace)?;
    let replication = options.replication.trim();
    if !(replication.starts_with('{') && replication.ends_with('}')) || replication.contains(';') {
        return Err(StoreError::permanent(format!(
            "replication {replication:?} must be a CQL map literal, e.g. \
             {{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}}"
        )));
    }
    let write = parse_consistency(&options.consistency)?;
    let read = match write {
        // EACH_QUORUM is for writes only; a local quorum overlaps every datacenter's
        // write quorum, so reads still see every acknowledged write.
        Consistency::EachQuorum => Consistency::LocalQuorum,
        other => other,
    };

    let mut policy = DefaultPolicy::builder().token_aware(true);
    if let Some(dc) = &options.local_dc {
        policy = policy.prefer_datacenter(dc.clone());
    }
    let profile = ExecutionProfile::builder()
        .consistency(write)
        .load_balancing_policy(policy.build())
        .build();
    let session = SessionBuilder::new()
        .known_nodes(nodes)
        .default_execution_profile_handle(profile.into_handle())
        // Client-side, per-process monotonic write timestamps: a later write of this
        // process (a rewrite of a batch with fewer parts) always supersedes an earlier
        // one, whichever coordinator each went through.
        .timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()))
        .build()
        .await
        .map_err(fail("connecting to ScyllaDB"))?;

    let mut create_keyspace = Statement::new(format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}"
    ));
    create_keyspace.set_is_idempotent(true);
    session
        .query_unpaged(create_keyspace, ())
        .await
        .map_err(fail("creating the keyspace"))?;
    session
        .use_keyspace(keyspace, false)
        .await
        .map_err(fail("switching to the keyspace"))?;
    for ddl in tables {
        let mut create = Statement::new(ddl);
        create.set_is_idempotent(true);
        session
            .query_unpaged(create, ())
            .await
            .map_err(fail("creating a table"))?;
    }
    Ok(Cluster {
        session: Arc::new(session),
        write,
        read,
    })
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

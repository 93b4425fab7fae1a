//! Moving an earlier embedded queue (a SQLite file) into a segment log:
//! `lucent-consumer queue migrate`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backend::error::StoreError;
use crate::backend::source::Source;
use crate::log::writer::LogPublisher;
use crate::sqlite::queue::SqliteSource;

/// What a migration moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub messages: u64,
    /// Where the SQLite file went, so that nothing opens it by mistake.
    pub renamed_to: PathBuf,
}

/// Appends every message of the SQLite queue `from` that `group` has not
/// committed to the log in `to`, in order and byte for byte (messages whose
/// headers never parsed too), committing in `from` as it goes; then renames
/// `from` (and its WAL files) to `*.migrated`.
///
/// Run it with lucent-ingest stopped. Interrupted, it can be run again: what
/// was appended but not yet committed in `from` is appended twice, and the
/// store's idempotence absorbs the repeat.
pub async fn migrate_sqlite_queue(
    from: &Path,
    to: &Path,
    group: &str,
) -> Result<Migrated, StoreError> {
    if !from.exists() {
        return Err(StoreError::permanent(format!(
            "{} does not exist",
            from.display()
        )));
    }
    let source = SqliteSource::open(from, group)?;
    let log = LogPublisher::open(to, 256 << 20, Duration::from_secs(60))?;
    let mut messages = 0u64;
    loop {
        let batch = source.poll(1000).await?;
        let Some(last) = batch.last().map(|m| m.offset) else {
            break;
        };
        for message in batch {
            let (headers, body) = match message.payload {
                Ok(envelope) => (envelope.meta.to_json(), envelope.body),
                Err(broken) => (broken.headers_json, broken.body.into()),
            };
            log.append(headers, body).await.map_err(|e| {
                StoreError::unavailable_from(format!("appending to {}", to.display()), e)
            })?;
            messages += 1;
        }
        source.commit(0, last + 1).await?;
    }
    drop(source);
    drop(log);
    let renamed_to = with_suffix(from, ".migrated");
    for suffix in ["", "-wal", "-shm"] {
        let file = with_suffix(from, suffix);
        if file.exists() {
            std::fs::rename(&file, with_suffix(&renamed_to, suffix)).map_err(|e| {
                StoreError::unavailable_from(format!("renaming {}", file.display()), e)
            })?;
        }
    }
    Ok(Migrated {
        messages,
        renamed_to,
    })
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::publisher::Publisher;
    use crate::domain::codec::Encoding;
    use crate::domain::envelope::{new_batch_id, Envelope, EnvelopeMeta};
    use crate::log::reader::LogSource;
    use crate::sqlite::queue::SqlitePublisher;

    fn envelope(n: u8) -> Envelope {
        Envelope {
            meta: EnvelopeMeta {
                org_id: "org".into(),
                key_id: "k".into(),
                batch_id: new_batch_id(),
                received_ms: n.into(),
                encoding: Encoding::Identity,
                content_type: "application/json".into(),
                user_agent: String::new(),
            },
            body: vec![n; 100].into(),
        }
    }

    #[tokio::test]
    async fn what_the_group_has_not_read_moves_in_order_and_the_old_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("queue.db");
        let sent: Vec<Envelope> = (0..10).map(envelope).collect();
        {
            let publisher = SqlitePublisher::open(&old, 1 << 20, Duration::from_secs(10)).unwrap();
            for e in &sent {
                publisher.publish(e.clone()).await.unwrap();
            }
            let consumer = SqliteSource::open(&old, "lucent-consumer").unwrap();
            let read = consumer.poll(4).await.unwrap();
            consumer
                .commit(0, read.last().unwrap().offset + 1)
                .await
                .unwrap();
        }
        let log = dir.path().join("queue");
        let migrated = migrate_sqlite_queue(&old, &log, "lucent-consumer")
            .await
            .unwrap();
        assert_eq!(migrated.messages, 6);
        assert!(!old.exists());
        assert!(migrated.renamed_to.exists());

        let source = LogSource::open(&log, "lucent-consumer").unwrap();
        let got = source.poll(100).await.unwrap();
        let bodies: Vec<_> = got
            .iter()
            .map(|m| m.payload.as_ref().unwrap().clone())
            .collect();
        assert_eq!(bodies, sent[4..]);
    }
}

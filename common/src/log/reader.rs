//! The read side of the segment log ([`crate::log`]), used by
//! `lucent-consumer`: reads records in offset order up to the writer's
//! durable offset, commits per group, and deletes segments every group has
//! committed past.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::backend::error::StoreError;
use crate::backend::source::{BrokenMessage, QueueMessage, Source};
use crate::domain::envelope::{Envelope, EnvelopeMeta};
use crate::log::offsets::{read_committed, OffsetFile};
use crate::log::record::{decode, Decoded};
use crate::log::segments::{list_segments, segment_path, ReadAhead};
use crate::log::writer::{read_durable, DURABLE_FILE};

/// How long an idle `poll` waits before answering empty.
const IDLE_POLL: Duration = Duration::from_millis(10);

/// Most body bytes one poll returns, whatever `max` allows.
const MAX_POLL_BYTES: usize = 32 << 20;

/// The directory of the groups' offset files.
pub const GROUPS_DIR: &str = "groups";

/// The segment log's read side, for one consumer group.
pub struct LogSource {
    state: Arc<Mutex<ReaderState>>,
}

impl LogSource {
    /// Opens the log in `dir` (creating the directory) for `group`, resuming
    /// at its committed offset. A group is registered when it first opens the
    /// log, so that segments it has not read are kept when others commit.
    pub fn open(dir: &Path, group: &str) -> Result<LogSource, StoreError> {
        let valid_group = !group.is_empty()
            && group
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid_group {
            return Err(StoreError::permanent(format!(
                "consumer group {group:?} must be letters, digits, '-', '_' or '.' (it names a file)"
            )));
        }
        let io = |what: &str| {
            let what = format!("{what} in {}", dir.display());
            move |e: io::Error| StoreError::unavailable_from(what, e)
        };
        std::fs::create_dir_all(dir.join(GROUPS_DIR)).map_err(io("creating the log directory"))?;
        let first_base = list_segments(dir)
            .map_err(io("listing segments"))?
            .first()
            .copied()
            .unwrap_or(0);
        let offsets = OffsetFile::open(&group_path(dir, group), first_base)
            .map_err(io("opening the group's offset"))?;
        let next_offset = offsets.committed();
        Ok(LogSource {
            state: Arc::new(Mutex::new(ReaderState {
                dir: dir.to_path_buf(),
                group_path: group_path(dir, group),
                durable: None,
                offsets,
                next_offset,
                segment: None,
            })),
        })
    }

    async fn blocking<R: Send + 'static>(
        &self,
        work: impl FnOnce(&mut ReaderState) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            let mut state = state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut state)
        })
        .await
        .map_err(|e| StoreError::unavailable_from("log reader task failed", e))?
    }
}

fn group_path(dir: &Path, group: &str) -> PathBuf {
    dir.join(GROUPS_DIR).join(format!("{group}.offset"))
}

#[async_trait]
impl Source for LogSource {
    async fn poll(&self, max: usize) -> Result<Vec<QueueMessage>, StoreError> {
        let messages = self.blocking(move |state| state.read(max)).await?;
        if messages.is_empty() {
            tokio::time::sleep(IDLE_POLL).await;
        }
        Ok(messages)
    }

    async fn commit(&self, partition: i32, next_offset: i64) -> Result<(), StoreError> {
        if partition != 0 {
            return Err(StoreError::permanent(format!(
                "the embedded log has no partition {partition}"
            )));
        }
        let next_offset = u64::try_from(next_offset)
            .map_err(|_| StoreError::permanent(format!("negative offset {next_offset}")))?;
        self.blocking(move |state| state.commit(next_offset)).await
    }

    async fn lag(&self) -> Result<Vec<(i32, i64)>, StoreError> {
        self.blocking(|state| {
            let durable = state.durable_offset()?;
            // From the file: another process of the group may have committed.
            let committed = read_committed(&state.group_path)
                .map_err(|e| StoreError::unavailable_from("reading the group's offset", e))?
                .unwrap_or(0);
            Ok(vec![(0, durable.saturating_sub(committed) as i64)])
        })
        .await
    }
}

struct OpenSegment {
    base: u64,
    bytes: ReadAhead,
    /// Whether everything held after the parsed bytes was read since the last
    /// record was parsed, so is what the file holds now.
    fresh: bool,
}

struct ReaderState {
    dir: PathBuf,
    group_path: PathBuf,
    durable: Option<File>,
    offsets: OffsetFile,
    /// The next offset to hand out.
    next_offset: u64,
    segment: Option<OpenSegment>,
}

impl ReaderState {
    /// The writer's durable offset (0 while no writer ever opened the log).
    fn durable_offset(&mut self) -> Result<u64, StoreError> {
        if self.durable.is_none() {
            match File::open(self.dir.join(DURABLE_FILE)) {
                Ok(file) => self.durable = Some(file),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
                Err(e) => {
                    return Err(StoreError::unavailable_from(
                        "opening the durable offset",
                        e,
                    ))
                }
            }
        }
        let file = self.durable.as_ref().expect("opened above");
        read_durable(file)
            .map_err(|e| StoreError::unavailable_from("reading the durable offset", e))
    }

    fn read(&mut self, max: usize) -> Result<Vec<QueueMessage>, StoreError> {
        let durable = self.durable_offset()?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while out.len() < max && self.next_offset < durable && bytes < MAX_POLL_BYTES {
            self.segment_at(self.next_offset)?;
            // Opening a segment may have moved past records that are gone.
            let offset = self.next_offset;
            if offset >= durable {
                break;
            }
            let segment = self.segment.as_mut().expect("opened above");
            let decoded = match decode(segment.bytes.unparsed()) {
                Decoded::Record(record, used) if record.offset == offset => {
                    Ok((record.headers.to_vec(), record.body.to_vec(), used))
                }
                Decoded::Record(..) => Err("a record out of sequence"),
                Decoded::Corrupt(why) => Err(why),
                Decoded::Incomplete => Err(""),
            };
            let (headers, body, used) = match decoded {
                Ok(record) => record,
                Err(why) => {
                    // Bytes read ahead past the durable offset may have been a
                    // torn tail that the writer has since cut off and written
                    // over: read them again before believing them.
                    if !segment.fresh {
                        segment.bytes.forget_unparsed();
                        segment.fresh = true;
                    }
                    if segment
                        .bytes
                        .refill()
                        .map_err(|e| StoreError::unavailable_from("reading a segment", e))?
                    {
                        continue;
                    }
                    if !why.is_empty() {
                        return Err(self.corrupt(offset, why));
                    }
                    // The segment ends here: the record is the next segment's first.
                    if segment_path(&self.dir, offset).exists() {
                        self.segment = None;
                        continue;
                    }
                    return Err(self.corrupt(offset, "the durable offset is past the log's end"));
                }
            };
            segment.fresh = false;
            segment.bytes.consume(used);
            self.next_offset += 1;
            bytes += body.len();
            out.push(QueueMessage {
                partition: 0,
                offset: offset as i64,
                payload: to_envelope(headers, body),
            });
        }
        Ok(out)
    }

    /// Positions the open segment at `offset`, opening the one that holds it
    /// (and reading up to it) when none is open.
    fn segment_at(&mut self, offset: u64) -> Result<(), StoreError> {
        if self.segment.is_none() {
            let bases = list_segments(&self.dir)
                .map_err(|e| StoreError::unavailable_from("listing segments", e))?;
            let Some(&base) = bases
                .iter()
                .rev()
                .find(|&&base| base <= offset)
                .or(bases.first())
            else {
                return Err(self.corrupt(offset, "no segment holds it"));
            };
            if offset < base {
                // Deleted under an offset no one committed: what is left starts later.
                tracing::warn!(
                    from = offset,
                    to = base,
                    "log records before the first segment are gone; resuming at it"
                );
                self.next_offset = base;
            }
            let file = File::open(segment_path(&self.dir, base))
                .map_err(|e| StoreError::unavailable_from("opening a segment", e))?;
            let mut bytes = ReadAhead::new(file);
            // Skip the records before the wanted one.
            let mut at_offset = base;
            while at_offset < self.next_offset {
                match decode(bytes.unparsed()) {
                    Decoded::Record(_, used) => {
                        bytes.consume(used);
                        at_offset += 1;
                    }
                    Decoded::Incomplete => {
                        let more = bytes
                            .refill()
                            .map_err(|e| StoreError::unavailable_from("reading a segment", e))?;
                        if !more {
                            return Err(self.corrupt(offset, "its segment ends before it"));
                        }
                    }
                    Decoded::Corrupt(why) => return Err(self.corrupt(at_offset, why)),
                }
            }
            let segment = OpenSegment {
                base,
                bytes,
                fresh: true,
            };
            self.segment = Some(segment);
        }
        Ok(())
    }

    fn corrupt(&self, offset: u64, why: &str) -> StoreError {
        let segment = self.segment.as_ref().map(|s| s.base);
        StoreError::permanent(format!(
            "the log in {} is damaged at offset {offset} (segment {segment:?}): {why}",
            self.dir.display()
        ))
    }

    fn commit(&mut self, next_offset: u64) -> Result<(), StoreError> {
        self.offsets
            .commit(next_offset)
            .map_err(|e| StoreError::unavailable_from("committing the group's offset", e))?;
        self.delete_consumed()
            .map_err(|e| StoreError::unavailable_from("deleting consumed segments", e))
    }

    /// Deletes the segments whose every record every group has committed past
    /// (a segment is done once the next one starts at or below that point).
    fn delete_consumed(&self) -> io::Result<()> {
        let mut lowest = u64::MAX;
        for entry in std::fs::read_dir(self.dir.join(GROUPS_DIR))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "offset") {
                lowest = lowest.min(read_committed(&path)?.unwrap_or(0));
            }
        }
        let bases = list_segments(&self.dir)?;
        for pair in bases.windows(2) {
            let (base, next_base) = (pair[0], pair[1]);
            if next_base > lowest {
                break;
            }
            std::fs::remove_file(segment_path(&self.dir, base))?;
        }
        Ok(())
    }
}

/// The message a record holds; bytes whose headers cannot be read are a
/// broken message, dead-lettered, never dropped.
fn to_envelope(headers: Vec<u8>, body: Vec<u8>) -> Result<Envelope, BrokenMessage> {
    let meta = std::str::from_utf8(&headers)
        .map_err(|_| "envelope headers are not UTF-8".to_string())
        .and_then(|text| EnvelopeMeta::from_json(text).map_err(|e| e.to_string()));
    match meta {
        Ok(meta) => Ok(Envelope {
            meta,
            body: body.into(),
        }),
        Err(reason) => Err(BrokenMessage {
            reason,
            headers_json: String::from_utf8_lossy(&headers).into_owned(),
            body,
        }),
    }
}

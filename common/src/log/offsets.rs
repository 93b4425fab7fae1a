//! A consumer group's committed offset, in a file of two slots written in
//! turn: a commit overwrites the older slot and syncs, so a crash mid-write
//! leaves the other slot whole, and the checksum tells which one tore.
//!
//! ```text
//! slot (24 bytes): next_offset u64 LE, generation u64 LE, CRC-32 u32 LE, 0u32
//! file: slot 0, slot 1
//! ```

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

const SLOT_BYTES: usize = 24;

/// A group's offset file, open for commits.
pub struct OffsetFile {
    file: File,
    generation: u64,
    committed: u64,
}

impl OffsetFile {
    /// Opens (creating at `initial`) the offset file at `path`.
    pub fn open(path: &Path, initial: u64) -> io::Result<OffsetFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut bytes = [0u8; 2 * SLOT_BYTES];
        let read = read_up_to(&file, &mut bytes)?;
        let best = [0, 1]
            .into_iter()
            .filter(|slot| (slot + 1) * SLOT_BYTES <= read)
            .filter_map(|slot| decode_slot(&bytes[slot * SLOT_BYTES..(slot + 1) * SLOT_BYTES]))
            .max_by_key(|&(_, generation)| generation);
        match best {
            Some((committed, generation)) => Ok(OffsetFile {
                file,
                generation,
                committed,
            }),
            None => {
                let mut fresh = OffsetFile {
                    file,
                    generation: 0,
                    committed: initial,
                };
                fresh.commit(initial)?;
                Ok(fresh)
            }
        }
    }

    /// The committed offset: the next one to read.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Durably records `next_offset` as committed.
    pub fn commit(&mut self, next_offset: u64) -> io::Result<()> {
        let generation = self.generation + 1;
        let slot = (generation % 2) as usize;
        self.file.write_all_at(
            &encode_slot(next_offset, generation),
            (slot * SLOT_BYTES) as u64,
        )?;
        self.file.sync_data()?;
        self.generation = generation;
        self.committed = next_offset;
        Ok(())
    }
}

/// The committed offset in the file at `path`, without opening it for commits
/// (None: no file, or no whole slot).
pub fn read_committed(path: &Path) -> io::Result<Option<u64>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = [0u8; 2 * SLOT_BYTES];
    let read = read_up_to(&file, &mut bytes)?;
    Ok([0, 1]
        .into_iter()
        .filter(|slot| (slot + 1) * SLOT_BYTES <= read)
        .filter_map(|slot| decode_slot(&bytes[slot * SLOT_BYTES..(slot + 1) * SLOT_BYTES]))
        .max_by_key(|&(_, generation)| generation)
        .map(|(offset, _)| offset))
}

fn read_up_to(file: &File, bytes: &mut [u8]) -> io::Result<usize> {
    let mut read = 0;
    while read < bytes.len() {
        match file.read_at(&mut bytes[read..], read as u64)? {
            0 => break,
            n => read += n,
        }
    }
    Ok(read)
}

fn encode_slot(next_offset: u64, generation: u64) -> [u8; SLOT_BYTES] {
    let mut slot = [0u8; SLOT_BYTES];
    slot[0..8].copy_from_slice(&next_offset.to_le_bytes());
    slot[8..16].copy_from_slice(&generation.to_le_bytes());
    let crc = crc32fast::hash(&slot[0..16]);
    slot[16..20].copy_from_slice(&crc.to_le_bytes());
    slot
}

fn decode_slot(slot: &[u8]) -> Option<(u64, u64)> {
    let crc = u32::from_le_bytes(slot[16..20].try_into().ok()?);
    let generation = u64::from_le_bytes(slot[8..16].try_into().ok()?);
    (generation > 0 && crc32fast::hash(&slot[0..16]) == crc).then(|| {
        let offset = u64::from_le_bytes(slot[0..8].try_into().expect("8 bytes"));
        (offset, generation)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.offset");
        let mut file = OffsetFile::open(&path, 5).unwrap();
        assert_eq!(file.committed(), 5);
        file.commit(9).unwrap();
        file.commit(12).unwrap();
        drop(file);
        assert_eq!(OffsetFile::open(&path, 0).unwrap().committed(), 12);
        assert_eq!(read_committed(&path).unwrap(), Some(12));
        assert_eq!(read_committed(&dir.path().join("none")).unwrap(), None);
    }

    #[test]
    fn a_torn_slot_falls_back_to_the_previous_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.offset");
        let mut file = OffsetFile::open(&path, 0).unwrap();
        file.commit(100).unwrap(); // generation 2, slot 0
        file.commit(200).unwrap(); // generation 3, slot 1
        drop(file);
        // Tear slot 1 (the newest), as a crash mid-write would.
        let raw = OpenOptions::new().write(true).open(&path).unwrap();
        raw.write_all_at(&[0xAB; 10], SLOT_BYTES as u64 + 4)
            .unwrap();
        let mut reopened = OffsetFile::open(&path, 0).unwrap();
        assert_eq!(reopened.committed(), 100);
        // The next commit overwrites the torn slot, not the good one.
        reopened.commit(300).unwrap();
        assert_eq!(read_committed(&path).unwrap(), Some(300));
    }
}

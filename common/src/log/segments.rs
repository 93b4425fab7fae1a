//! The segment files of a log directory: naming, listing, and finding where
//! the valid records of a segment end.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::log::record::{decode, Decoded};

const SUFFIX: &str = ".seg";

/// Bytes read at a time when scanning or reading a segment.
pub const READ_CHUNK_BYTES: usize = 1 << 20;

/// The path of the segment whose first record has offset `base`.
pub fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{SUFFIX}"))
}

/// The base offsets of the segments in `dir`, in order.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = name
            .strip_suffix(SUFFIX)
            .filter(|digits| digits.len() == 20)
            .and_then(|digits| digits.parse::<u64>().ok())
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// A segment read forward in chunks, keeping the bytes not parsed yet.
pub struct ReadAhead {
    file: File,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_start: u64,
    /// Parsed up to here within `buf`.
    at: usize,
}

impl ReadAhead {
    pub fn new(file: File) -> ReadAhead {
        ReadAhead {
            file,
            buf: Vec::new(),
            buf_start: 0,
            at: 0,
        }
    }

    /// The bytes read but not parsed yet.
    pub fn unparsed(&self) -> &[u8] {
        &self.buf[self.at..]
    }

    /// Marks `bytes` more as parsed.
    pub fn consume(&mut self, bytes: usize) {
        self.at += bytes;
    }

    /// The file position of the first byte not parsed yet.
    pub fn position(&self) -> u64 {
        self.buf_start + self.at as u64
    }

    /// Drops the bytes read but not parsed: the next refill reads them again
    /// from the file, as they are now.
    pub fn forget_unparsed(&mut self) {
        self.buf.truncate(self.at);
    }

    /// Reads more of the file after what is held; false at its end.
    pub fn refill(&mut self) -> io::Result<bool> {
        self.buf.drain(..self.at);
        self.buf_start += self.at as u64;
        self.at = 0;
        let old = self.buf.len();
        // At least a chunk, and twice what is held, so a record larger than
        // a chunk is read whole in a few steps.
        self.buf.resize(READ_CHUNK_BYTES.max(old * 2), 0);
        let read = self
            .file
            .read_at(&mut self.buf[old..], self.buf_start + old as u64)?;
        self.buf.truncate(old + read);
        Ok(read > 0)
    }
}

/// Where the valid records of a segment end, and what follows them.
#[derive(Debug, PartialEq, Eq)]
pub struct ScanEnd {
    /// Byte position after the last valid record.
    pub valid_bytes: u64,
    /// The offset the next record would have.
    pub next_offset: u64,
    /// Bytes after `valid_bytes`: a torn or never-finished record.
    pub trailing_bytes: u64,
}

/// Reads the segment `file` (first offset `base`) from its start and finds
/// the end of its valid records: the first record that is incomplete,
/// corrupt, or out of sequence ends them.
pub fn scan(file: &File, base: u64) -> io::Result<ScanEnd> {
    let len = file.metadata()?.len();
    let mut segment = ReadAhead::new(file.try_clone()?);
    let mut next_offset = base;
    loop {
        let more = match decode(segment.unparsed()) {
            Decoded::Record(record, used) if record.offset == next_offset => Some(used),
            Decoded::Incomplete => None,
            _ => break,
        };
        match more {
            Some(used) => {
                segment.consume(used);
                next_offset += 1;
            }
            None if segment.refill()? => {}
            None => break,
        }
    }
    let valid_bytes = segment.position();
    Ok(ScanEnd {
        valid_bytes,
        next_offset,
        trailing_bytes: len - valid_bytes,
    })
}

/// Makes the directory entries of `dir` (new or removed files) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::log::record::encode;

    fn segment_with(dir: &Path, base: u64, count: u64) -> (PathBuf, u64) {
        let mut bytes = Vec::new();
        for offset in base..base + count {
            encode(&mut bytes, offset, b"{}", &vec![offset as u8; 700]);
        }
        let path = segment_path(dir, base);
        std::fs::write(&path, &bytes).unwrap();
        (path, bytes.len() as u64)
    }

    #[test]
    fn segments_are_listed_by_base_offset() {
        let dir = tempfile::tempdir().unwrap();
        for base in [300, 0, 20] {
            File::create(segment_path(dir.path(), base)).unwrap();
        }
        File::create(dir.path().join("durable")).unwrap();
        File::create(dir.path().join("12.seg")).unwrap();
        assert_eq!(list_segments(dir.path()).unwrap(), [0, 20, 300]);
    }

    #[test]
    fn a_whole_segment_scans_to_its_end_across_read_chunks() {
        let dir = tempfile::tempdir().unwrap();
        // 3 000 records of ~730 bytes: a bit over two read chunks.
        let (path, len) = segment_with(dir.path(), 40, 3_000);
        let end = scan(&File::open(path).unwrap(), 40).unwrap();
        assert_eq!(
            end,
            ScanEnd {
                valid_bytes: len,
                next_offset: 3_040,
                trailing_bytes: 0
            }
        );
    }

    #[test]
    fn a_torn_last_record_ends_the_valid_records() {
        let dir = tempfile::tempdir().unwrap();
        let (path, len) = segment_with(dir.path(), 0, 10);
        let mut torn = Vec::new();
        encode(&mut torn, 10, b"{}", b"the eleventh record");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(&torn[..torn.len() - 3]).unwrap();
        let end = scan(&File::open(&path).unwrap(), 0).unwrap();
        assert_eq!((end.valid_bytes, end.next_offset), (len, 10));
        assert_eq!(end.trailing_bytes, torn.len() as u64 - 3);
    }

    #[test]
    fn garbage_or_a_record_out_of_sequence_ends_them_too() {
        let dir = tempfile::tempdir().unwrap();
        let (path, len) = segment_with(dir.path(), 0, 5);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let mut stray = Vec::new();
        encode(&mut stray, 99, b"{}", b"not the sixth");
        file.write_all(&stray).unwrap();
        let end = scan(&File::open(&path).unwrap(), 0).unwrap();
        assert_eq!((end.valid_bytes, end.next_offset), (len, 5));
        file.write_all(&[0; 4096]).unwrap();
        let end = scan(&File::open(&path).unwrap(), 0).unwrap();
        assert_eq!(end.trailing_bytes, stray.len() as u64 + 4096);
    }
}

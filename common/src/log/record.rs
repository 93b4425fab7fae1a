//! One record of a segment: a 16-byte header, then the envelope's headers
//! (JSON) and body.
//!
//! ```text
//! offset   u64 LE   the record's offset in the log
//! length   u32 LE   bytes of the payload that follows
//! checksum u32 LE   CRC-32 of offset, length and payload
//! payload           headers length (u32 LE), headers JSON, body
//! ```
//!
//! The checksum covers the offset, so a record left over from an earlier
//! write at the same position (a truncated tail overwritten) never passes
//! for the next one.

/// Bytes before the payload.
pub const HEADER_BYTES: usize = 16;

/// Largest payload a record may have; a length past it is corruption, not a
/// record (ingest bodies are at most a few MiB).
pub const MAX_PAYLOAD_BYTES: usize = 256 << 20;

/// Appends the record of `offset` holding `headers` and `body` to `out`.
pub fn encode(out: &mut Vec<u8>, offset: u64, headers: &[u8], body: &[u8]) {
    let payload_len = 4 + headers.len() + body.len();
    let start = out.len();
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(headers.len() as u32).to_le_bytes());
    out.extend_from_slice(headers);
    out.extend_from_slice(body);
    let checksum = checksum(&out[start..start + 12], &out[start + HEADER_BYTES..]);
    out[start + 12..start + 16].copy_from_slice(&checksum.to_le_bytes());
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset: u64,
    pub headers: &'a [u8],
    pub body: &'a [u8],
}

/// What is at the start of a byte range that should begin with a record.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole record, and the bytes it takes.
    Record(Record<'a>, usize),
    /// The bytes end inside a record (or its header): more may be coming.
    Incomplete,
    /// A record that cannot be: a bad checksum or an impossible length.
    Corrupt(&'static str),
}

/// Decodes the record at the start of `bytes`.
pub fn decode(bytes: &[u8]) -> Decoded<'_> {
    if bytes.len() < HEADER_BYTES {
        return Decoded::Incomplete;
    }
    let offset = u64::from_le_bytes(bytes[0..8].try_into().expect("8 bytes"));
    let len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    let stored = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    if !(4..=MAX_PAYLOAD_BYTES).contains(&len) {
        return Decoded::Corrupt("impossible record length");
    }
    let Some(payload) = bytes.get(HEADER_BYTES..HEADER_BYTES + len) else {
        return Decoded::Incomplete;
    };
    if checksum(&bytes[0..12], payload) != stored {
        return Decoded::Corrupt("checksum mismatch");
    }
    let headers_len = u32::from_le_bytes(payload[0..4].try_into().expect("4 bytes")) as usize;
    let Some(headers) = payload.get(4..4 + headers_len) else {
        return Decoded::Corrupt("headers longer than the record");
    };
    let record = Record {
        offset,
        headers,
        body: &payload[4 + headers_len..],
    };
    Decoded::Record(record, HEADER_BYTES + len)
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header);
    hasher.update(payload);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_back_to_back() {
        let mut bytes = Vec::new();
        encode(&mut bytes, 7, b"{\"a\":\"1\"}", b"body one");
        encode(&mut bytes, 8, b"{}", b"");
        let Decoded::Record(first, used) = decode(&bytes) else {
            panic!("first record")
        };
        assert_eq!(
            first,
            Record {
                offset: 7,
                headers: b"{\"a\":\"1\"}",
                body: b"body one"
            }
        );
        let Decoded::Record(second, rest) = decode(&bytes[used..]) else {
            panic!("second record")
        };
        assert_eq!((second.offset, second.body), (8, &b""[..]));
        assert_eq!(used + rest, bytes.len());
    }

    #[test]
    fn every_prefix_of_a_record_is_incomplete_never_a_record() {
        let mut bytes = Vec::new();
        encode(&mut bytes, 1, b"{}", &[9; 100]);
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), Decoded::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn any_flipped_bit_is_corruption() {
        let mut bytes = Vec::new();
        encode(&mut bytes, 3, b"{\"h\":\"v\"}", b"payload");
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[i] ^= 1 << bit;
                assert!(
                    !matches!(decode(&flipped), Decoded::Record(r, _) if r.offset == 3 && r.body == b"payload"),
                    "byte {i} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn zeroes_where_a_record_should_start_are_corrupt() {
        // What a file extended but never written holds after a crash.
        assert_eq!(
            decode(&[0; 64]),
            Decoded::Corrupt("impossible record length")
        );
    }
}

//! gzip-compressed bodies for tests.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

/// `data` gzip-compressed at the default level (6), as SDKs send it
/// (`CompressionStream('gzip')` in browsers).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    gzip_level(data, Compression::default().level())
}

/// `data` gzip-compressed at `level` (0–9).
pub fn gzip_level(data: &[u8], level: u32) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::new(level));
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("finishing into a Vec cannot fail")
}

/// A gzip bomb: `mib` MiB of zero bytes at the best level (about 1 KiB of
/// gzip per MiB), written a MiB at a time so that the decompressed size is
/// never in memory here.
pub fn gzip_zeros(mib: usize) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..mib {
        enc.write_all(&zeros).expect("writing to a Vec cannot fail");
    }
    enc.finish().expect("finishing into a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn every_level_round_trips_and_the_default_is_six() {
        let data = br#"{"sessionId":"s","seq":0,"events":[]}"#.repeat(20);
        for level in 0..=9 {
            assert_eq!(gunzip(&gzip_level(&data, level)), data);
        }
        assert_eq!(gzip(&data), gzip_level(&data, 6));
    }

    #[test]
    fn a_bomb_is_small_and_expands_to_its_size() {
        let bomb = gzip_zeros(4);
        assert!(bomb.len() < 8 * 1024, "{} bytes", bomb.len());
        let data = gunzip(&bomb);
        assert_eq!(data.len(), 4 << 20);
        assert!(data.iter().all(|&b| b == 0));
    }
}

//! Content encodings: naming, sniffing and bounded decoding.
//!
//! Decoding is always bounded by an output limit, so a small compressed body that
//! expands to gigabytes (a "bomb") costs at most the limit in memory and ends as
//! an error, never as an allocation failure.

use std::io::Read;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A body encoding the pipeline understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Identity,
    Gzip,
    Deflate,
    Zstd,
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The decoded output would exceed the configured bound.
    #[error("decoded body exceeds {limit_bytes} bytes")]
    TooLarge { limit_bytes: usize },
    /// The compressed stream is corrupt or ends early.
    #[error("corrupt or truncated {encoding} stream: {source}")]
    Corrupt {
        encoding: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl Encoding {
    /// Parses a `Content-Encoding` header value. `None` means the encoding is not
    /// supported (415); an empty value is the same as no header.
    pub fn from_content_encoding(value: &str) -> Option<Encoding> {
        let value = value.trim();
        if value.is_empty() {
            return Some(Encoding::Identity);
        }
        match value.to_ascii_lowercase().as_str() {
            "identity" => Some(Encoding::Identity),
            // RFC 9110 §8.4.1.3: recipients should treat x-gzip as gzip.
            "gzip" | "x-gzip" => Some(Encoding::Gzip),
            "deflate" => Some(Encoding::Deflate),
            "zstd" => Some(Encoding::Zstd),
            _ => None,
        }
    }

    /// The canonical name, as written in the `lucent.encoding` envelope header.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
            Encoding::Deflate => "deflate",
            Encoding::Zstd => "zstd",
        }
    }

    /// Inverse of [`Encoding::as_str`].
    pub fn from_name(name: &str) -> Option<Encoding> {
        match name {
            "identity" => Some(Encoding::Identity),
            "gzip" => Some(Encoding::Gzip),
            "deflate" => Some(Encoding::Deflate),
            "zstd" => Some(Encoding::Zstd),
            _ => None,
        }
    }
}

/// True when the body starts with the gzip magic bytes. `sendBeacon` cannot set
/// `Content-Encoding`, so the front end recognises gzip this way.
pub fn looks_like_gzip(body: &[u8]) -> bool {
    body.starts_with(&GZIP_MAGIC)
}

/// True when the body starts with the zstd frame magic.
pub fn looks_like_zstd(body: &[u8]) -> bool {
    body.starts_with(&ZSTD_MAGIC)
}

/// The encoding to decode with: the declared one, except that an identity body
/// carrying gzip or zstd magic is decoded as such. JSON text never starts with
/// those bytes, so the sniff cannot misread a valid plain body.
pub fn effective_encoding(declared: Encoding, body: &[u8]) -> Encoding {
    match declared {
        Encoding::Identity if looks_like_gzip(body) => Encoding::Gzip,
        Encoding::Identity if looks_like_zstd(body) => Encoding::Zstd,
        other => other,
    }
}

/// Decodes `body` with at most `limit_bytes` of output.
///
/// `deflate` accepts both the zlib-wrapped form that RFC 9110 specifies and the
/// raw form that some clients send instead.
pub fn decode(body: &[u8], encoding: Encoding, limit_bytes: usize) -> Result<Vec<u8>, DecodeError> {
    match encoding {
        Encoding::Identity => {
            if body.len() > limit_bytes {
                return Err(DecodeError::TooLarge { limit_bytes });
            }
            Ok(body.to_vec())
        }
        Encoding::Gzip => {
            decode_to_limit(flate2::read::MultiGzDecoder::new(body), "gzip", limit_bytes)
        }
        Encoding::Deflate if has_zlib_header(body) => {
            decode_to_limit(flate2::read::ZlibDecoder::new(body), "deflate", limit_bytes)
        }
        Encoding::Deflate => decode_to_limit(
            flate2::read::DeflateDecoder::new(body),
            "deflate",
            limit_bytes,
        ),
        Encoding::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::new(body).map_err(|source| DecodeError::Corrupt {
                    encoding: "zstd",
                    source,
                })?;
            decode_to_limit(decoder, "zstd", limit_bytes)
        }
    }
}

fn has_zlib_header(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

fn decode_to_limit(
    reader: impl Read,
    encoding: &'static str,
    limit_bytes: usize,
) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    // One byte past the limit tells "exactly the limit" from "more than the limit".
    let mut limited = reader.take(limit_bytes as u64 + 1);
    limited
        .read_to_end(&mut out)
        .map_err(|source| DecodeError::Corrupt { encoding, source })?;
    if out.len() > limit_bytes {
        return Err(DecodeError::TooLarge { limit_bytes });
    }
    if out.is_empty() {
        // A compressed stream that decodes to nothing was cut before its first block.
        return Err(DecodeError::Corrupt {
            encoding,
            source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "stream holds no data"),
        });
    }
    Ok(out)
}

/// Compresses with zstd at a level that favours speed; used for stored chunks.
pub fn zstd_compress(data: &[u8]) -> Vec<u8> {
    // Level 3 is zstd's default: several hundred MB/s per core with a good ratio
    // on repetitive DOM JSON. Encoding into memory cannot fail short of OOM.
    zstd::bulk::compress(data, 3).expect("zstd compression into a Vec does not fail")
}

/// Inverse of [`zstd_compress`], bounded like every other decode.
pub fn zstd_decompress(data: &[u8], limit_bytes: usize) -> Result<Vec<u8>, DecodeError> {
    decode(data, Encoding::Zstd, limit_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lucent_testkit::gzip;
    use std::io::Write;

    #[test]
    fn every_encoding_round_trips() {
        let data = br#"{"sessionId":"s","seq":0,"events":[]}"#.repeat(50);
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(&data).unwrap();
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&data).unwrap();
        let cases = [
            (Encoding::Identity, data.clone()),
            (Encoding::Gzip, gzip(&data)),
            (Encoding::Deflate, zlib.finish().unwrap()),
            (Encoding::Deflate, raw.finish().unwrap()),
            (Encoding::Zstd, zstd_compress(&data)),
        ];
        for (encoding, body) in cases {
            assert_eq!(
                decode(&body, encoding, 1 << 20).unwrap(),
                data,
                "{encoding:?}"
            );
        }
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let body = gzip(&b"x".repeat(10_000));
        for cut in [1, 10, body.len() / 2, body.len() - 1] {
            let err = decode(&body[..cut], Encoding::Gzip, 1 << 20).unwrap_err();
            assert!(
                matches!(err, DecodeError::Corrupt { .. }),
                "cut at {cut}: {err}"
            );
        }
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        let body = gzip(&vec![0u8; 64 << 20]);
        assert!(body.len() < 100_000);
        let err = decode(&body, Encoding::Gzip, 1 << 20).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { limit_bytes } if limit_bytes == 1 << 20));
    }

    #[test]
    fn output_of_exactly_the_limit_is_accepted() {
        let body = gzip(&[7u8; 1000]);
        assert_eq!(decode(&body, Encoding::Gzip, 1000).unwrap().len(), 1000);
        assert!(decode(&body, Encoding::Gzip, 999).is_err());
    }

    #[test]
    fn sniffing_only_overrides_identity() {
        let gz = gzip(b"{}");
        assert_eq!(effective_encoding(Encoding::Identity, &gz), Encoding::Gzip);
        assert_eq!(
            effective_encoding(Encoding::Identity, &zstd_compress(b"{}")),
            Encoding::Zstd
        );
        assert_eq!(
            effective_encoding(Encoding::Identity, b"{}"),
            Encoding::Identity
        );
        assert_eq!(
            effective_encoding(Encoding::Deflate, &gz),
            Encoding::Deflate
        );
    }

    #[test]
    fn content_encoding_names() {
        assert_eq!(
            Encoding::from_content_encoding(" GZIP "),
            Some(Encoding::Gzip)
        );
        assert_eq!(
            Encoding::from_content_encoding("x-gzip"),
            Some(Encoding::Gzip)
        );
        assert_eq!(
            Encoding::from_content_encoding(""),
            Some(Encoding::Identity)
        );
        assert_eq!(Encoding::from_content_encoding("br"), None);
        assert_eq!(Encoding::from_content_encoding("gzip, br"), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            for encoding in [Encoding::Identity, Encoding::Gzip, Encoding::Deflate, Encoding::Zstd] {
                let _ = decode(&body, encoding, 4096);
            }
        }
    }
}

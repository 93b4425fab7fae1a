//! The pool of ready-to-send requests: bodies from [`super::bodies`] behind
//! the heads a browser sends, fetch- or beacon-shaped per the traffic mix.

use std::fmt::Write as _;

use super::{Body, BodyKind, Generator, USER_AGENT};

/// The traffic mix of a run.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Share of requests carrying a full snapshot instead of an incremental batch.
    pub full_snapshot_share: f64,
    /// Share of requests shaped like `navigator.sendBeacon`: key in `?api_key=`,
    /// `text/plain`, gzip body without `Content-Encoding` (the server sniffs it).
    pub beacon_share: f64,
}

impl Mix {
    /// Small gzip batches only (the throughput target's traffic).
    pub const SMALL: Mix = Mix {
        full_snapshot_share: 0.0,
        beacon_share: 0.1,
    };
    /// A session's real mix: a full snapshot on each page load, a few percent of batches.
    pub const MIXED: Mix = Mix {
        full_snapshot_share: 0.03,
        beacon_share: 0.1,
    };
}

/// One ready request: its head (with key and `Content-Length`) and its body.
struct Template {
    head: Vec<u8>,
    body: usize,
}

/// Requests ready to send, cycled through by the load generator. Heads and
/// bodies are kept apart and copied into a connection's buffer per request (a
/// memcpy of a few KiB), so a million-key pool does not need a million bodies.
pub struct RequestPool {
    templates: Vec<Template>,
    bodies: Vec<Body>,
}

impl RequestPool {
    /// Builds at least `min_templates` requests spreading `keys` and `bodies`
    /// per `mix`; `host` is the `Host` header.
    pub fn new(
        seed: u64,
        bodies: Vec<Body>,
        keys: &[String],
        mix: Mix,
        host: &str,
        min_templates: usize,
    ) -> RequestPool {
        let mut g = Generator::new(seed ^ 0x5eed);
        let incremental: Vec<usize> = (0..bodies.len())
            .filter(|&i| bodies[i].kind == BodyKind::Incremental)
            .collect();
        let full: Vec<usize> = (0..bodies.len())
            .filter(|&i| bodies[i].kind == BodyKind::FullSnapshot)
            .collect();
        assert!(
            !incremental.is_empty() && !keys.is_empty(),
            "a pool needs bodies and keys"
        );
        let n = min_templates.max(keys.len());
        let templates = (0..n)
            .map(|i| {
                let body = if !full.is_empty() && g.chance(mix.full_snapshot_share) {
                    full[g.below(full.len())]
                } else {
                    incremental[g.below(incremental.len())]
                };
                let key = &keys[i % keys.len()];
                let beacon = g.chance(mix.beacon_share);
                Template {
                    head: request_head(host, key, beacon, bodies[body].wire.len()),
                    body,
                }
            })
            .collect();
        RequestPool { templates, bodies }
    }

    pub fn len(&self) -> usize {
        self.templates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// Writes request `i` (mod the pool size) into `buf`; returns its body's
    /// (wire, decoded) sizes.
    pub fn write_request(&self, i: usize, buf: &mut Vec<u8>) -> (usize, usize) {
        let t = &self.templates[i % self.templates.len()];
        let body = &self.bodies[t.body];
        buf.clear();
        buf.extend_from_slice(&t.head);
        buf.extend_from_slice(&body.wire);
        (body.wire.len(), body.raw_len)
    }
}

/// The head a browser sends: `fetch` with the key header and `Content-Encoding:
/// gzip`, or a beacon with the key in the query and `text/plain`.
fn request_head(host: &str, key: &str, beacon: bool, length: usize) -> Vec<u8> {
    let mut h = String::with_capacity(700);
    if beacon {
        let _ = write!(h, "POST /api/sdk/replay?api_key={key} HTTP/1.1\r\n");
    } else {
        h.push_str("POST /api/sdk/replay HTTP/1.1\r\n");
    }
    let _ = write!(h, "Host: {host}\r\n");
    let _ = write!(h, "User-Agent: {USER_AGENT}\r\n");
    h.push_str("Accept: */*\r\nAccept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n");
    h.push_str("Origin: https://shop.example.com\r\nReferer: https://shop.example.com/\r\n");
    h.push_str("Sec-Fetch-Mode: cors\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Dest: empty\r\n");
    if beacon {
        h.push_str("Content-Type: text/plain;charset=UTF-8\r\n");
    } else {
        h.push_str("Content-Type: application/json\r\nContent-Encoding: gzip\r\n");
        let _ = write!(h, "X-Lucent-Api-Key: {key}\r\n");
    }
    let _ = write!(h, "Content-Length: {length}\r\n\r\n");
    h.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::bodies;

    #[test]
    fn requests_carry_the_key_where_a_browser_puts_it() {
        let keys = vec!["luc_pk_0123456789abcdef0123456789abcdef".to_string()];
        let pool = RequestPool::new(
            1,
            bodies(1, 4, 0),
            &keys,
            Mix {
                full_snapshot_share: 0.0,
                beacon_share: 0.5,
            },
            "h:1",
            64,
        );
        let mut buf = Vec::new();
        let (mut beacons, mut fetches) = (0, 0);
        for i in 0..pool.len() {
            let (wire, _) = pool.write_request(i, &mut buf);
            let text = String::from_utf8_lossy(&buf[..buf.len() - wire]).to_string();
            assert!(text.contains(&format!("Content-Length: {wire}\r\n")));
            if text.starts_with("POST /api/sdk/replay?api_key=luc_pk_") {
                assert!(text.contains("text/plain") && !text.contains("Content-Encoding"));
                beacons += 1;
            } else {
                assert!(
                    text.contains("X-Lucent-Api-Key: luc_pk_")
                        && text.contains("Content-Encoding: gzip")
                );
                fetches += 1;
            }
        }
        assert!(beacons > 10 && fetches > 10);
    }
}

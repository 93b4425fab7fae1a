//! Realistic request bodies, gzipped as browsers send them, and (in `pool`)
//! the pool of ready-to-send requests.
//!
//! Bodies imitate what the rrweb recorder produces: incremental snapshots (type 3)
//! of mouse moves, clicks, scrolls, input and DOM mutations with node ids and
//! attributes, a Meta event (type 4) at the start of a page, and full snapshots
//! (type 2) that are a serialized DOM tree. Text is drawn from a word list, so the
//! JSON compresses about as well as a real page's (neither random bytes nor one
//! repeated string). Everything is generated from a seed before any measurement,
//! so the cost of generating and gzipping is never part of a result.

use std::fmt::Write as _;

use bytes::Bytes;
use lucent_testkit::gzip;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

mod pool;
pub use pool::{Mix, RequestPool};

/// Uncompressed size of an incremental batch: what an SDK flushing every few
/// seconds sends.
pub const INCREMENTAL_BYTES: std::ops::RangeInclusive<usize> = 2 * 1024..=8 * 1024;
/// Uncompressed size of a full snapshot batch: a real page's serialized DOM.
pub const FULL_SNAPSHOT_BYTES: std::ops::RangeInclusive<usize> = 100 * 1024..=500 * 1024;

const WORDS: &[&str] = &[
    "product",
    "cart",
    "checkout",
    "price",
    "shipping",
    "account",
    "search",
    "menu",
    "header",
    "footer",
    "button",
    "primary",
    "secondary",
    "container",
    "row",
    "col",
    "card",
    "title",
    "subtitle",
    "description",
    "image",
    "thumbnail",
    "link",
    "nav",
    "item",
    "active",
    "disabled",
    "hidden",
    "modal",
    "dialog",
    "form",
    "input",
    "label",
    "select",
    "option",
    "summer",
    "sale",
    "new",
    "arrivals",
    "free",
    "returns",
    "size",
    "color",
    "blue",
    "black",
    "white",
    "cotton",
    "shirt",
    "jacket",
    "shoes",
    "review",
    "stars",
    "customer",
    "order",
    "total",
    "discount",
    "code",
    "apply",
    "continue",
    "back",
    "next",
    "page",
    "results",
    "filter",
    "sort",
    "relevance",
    "popular",
    "wishlist",
    "login",
    "register",
    "password",
    "email",
    "address",
    "city",
    "country",
    "payment",
    "card-number",
    "expiry",
    "help",
    "contact",
    "about",
    "careers",
    "blog",
    "the",
    "and",
    "for",
    "with",
    "your",
    "our",
    "this",
    "that",
    "you",
    "from",
    "more",
];
const TAGS: &[&str] = &[
    "div", "div", "div", "span", "span", "a", "p", "li", "ul", "img", "button", "section", "h2",
    "h3", "input", "label", "svg", "path", "i", "strong",
];
const URLS: &[&str] = &[
    "https://shop.example.com/",
    "https://shop.example.com/products/blue-cotton-shirt",
    "https://shop.example.com/cart",
    "https://shop.example.com/checkout/payment",
    "https://shop.example.com/search?q=summer+jacket",
    "https://app.example.io/dashboard/projects/42/settings",
];
/// A current desktop Chrome.
pub const USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

/// What a body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Incremental,
    FullSnapshot,
}

/// One gzip body as a browser sends it.
#[derive(Debug, Clone)]
pub struct Body {
    pub kind: BodyKind,
    /// The gzip stream, as sent on the wire.
    pub wire: Bytes,
    /// Bytes of JSON it decodes to.
    pub raw_len: usize,
}

/// Deterministic rrweb-like event generator.
pub struct Generator {
    rng: StdRng,
    timestamp_ms: u64,
    next_node_id: u64,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator {
            rng: StdRng::seed_from_u64(seed),
            timestamp_ms: 1_732_700_000_000,
            next_node_id: 1,
        }
    }

    fn word(&mut self) -> &'static str {
        WORDS.choose(&mut self.rng).copied().unwrap_or("x")
    }

    fn words(&mut self, n: usize) -> String {
        let mut s = String::new();
        for i in 0..n {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(self.word());
        }
        s
    }

    fn class(&mut self) -> String {
        let n = self.rng.random_range(1..=3);
        let mut s = String::new();
        for i in 0..n {
            if i > 0 {
                s.push(' ');
            }
            let _ = write!(s, "{}-{}", self.word(), self.word());
        }
        s
    }

    fn node_id(&mut self) -> u64 {
        self.rng.random_range(1..self.next_node_id.max(2) + 400)
    }

    fn tick(&mut self, min: u64, max: u64) -> u64 {
        self.timestamp_ms += self.rng.random_range(min..max);
        self.timestamp_ms
    }

    /// A 32-hex-digit session id, as the SDK makes them.
    pub fn session_id(&mut self) -> String {
        format!("{:032x}", self.rng.random::<u128>())
    }

    /// One small element subtree, as a mutation adds it.
    fn added_node(&mut self, depth: u32) -> Value {
        self.next_node_id += 1;
        let id = self.next_node_id;
        let tag = TAGS.choose(&mut self.rng).copied().unwrap_or("div");
        let mut children = Vec::new();
        if depth < 2 {
            for _ in 0..self.rng.random_range(0..3) {
                children.push(self.added_node(depth + 1));
            }
        }
        if self.rng.random_bool(0.5) {
            self.next_node_id += 1;
            let n = self.rng.random_range(1..6);
            children
                .push(json!({"type": 3, "textContent": self.words(n), "id": self.next_node_id}));
        }
        json!({
            "type": 2,
            "tagName": tag,
            "attributes": {"class": self.class()},
            "childNodes": children,
            "id": id,
        })
    }

    /// One incremental-snapshot event (rrweb EventType 3), with the mix of
    /// sources a browsing user produces.
    fn incremental_event(&mut self) -> Value {
        let timestamp = self.tick(8, 300);
        let pick = self.rng.random_range(0..100);
        let data = match pick {
            // MouseMove: positions sampled every ~50 ms, flushed in groups.
            0..=34 => {
                let n = self.rng.random_range(3..12);
                let (mut x, mut y) = (
                    self.rng.random_range(0..1440),
                    self.rng.random_range(0..900),
                );
                let positions: Vec<Value> = (0..n)
                    .map(|i| {
                        x = (x + self.rng.random_range(-30i32..30)).clamp(0, 1440);
                        y = (y + self.rng.random_range(-20i32..20)).clamp(0, 900);
                        json!({"x": x, "y": y, "id": self.node_id(), "timeOffset": -(n - i) * 50})
                    })
                    .collect();
                json!({"source": 1, "positions": positions})
            }
            // MouseInteraction: click, focus, blur...
            35..=49 => json!({
                "source": 2,
                "type": self.rng.random_range(0..10),
                "id": self.node_id(),
                "x": self.rng.random_range(0..1440),
                "y": self.rng.random_range(0..900),
                "pointerType": 0,
            }),
            // Scroll.
            50..=64 => json!({
                "source": 3,
                "id": self.node_id(),
                "x": 0,
                "y": self.rng.random_range(0..12000),
            }),
            // Input.
            65..=74 => {
                let n = self.rng.random_range(1..4);
                json!({
                    "source": 5,
                    "text": self.words(n),
                    "isChecked": false,
                    "id": self.node_id(),
                })
            }
            // Mutation: the bulk of real traffic's bytes.
            75..=97 => {
                let adds: Vec<Value> = (0..self.rng.random_range(0..4))
                    .map(|_| {
                        json!({"parentId": self.node_id(), "nextId": null, "node": self.added_node(0)})
                    })
                    .collect();
                let removes: Vec<Value> = (0..self.rng.random_range(0..3))
                    .map(|_| json!({"parentId": self.node_id(), "id": self.node_id()}))
                    .collect();
                let attributes: Vec<Value> = (0..self.rng.random_range(0..4))
                    .map(|_| {
                        json!({"id": self.node_id(), "attributes": {
                            "class": self.class(),
                            "style": format!("transform: translateX({}px); opacity: 0.{}", self.rng.random_range(0..400), self.rng.random_range(0..10)),
                        }})
                    })
                    .collect();
                let texts: Vec<Value> = (0..self.rng.random_range(0..3))
                    .map(|_| {
                        let n = self.rng.random_range(1..8);
                        json!({"id": self.node_id(), "value": self.words(n)})
                    })
                    .collect();
                json!({"source": 0, "texts": texts, "attributes": attributes, "removes": removes, "adds": adds})
            }
            // ViewportResize.
            _ => {
                json!({"source": 4, "width": self.rng.random_range(360..1920), "height": self.rng.random_range(640..1200)})
            }
        };
        json!({"type": 3, "data": data, "timestamp": timestamp})
    }

    fn meta_event(&mut self) -> Value {
        let href = URLS.choose(&mut self.rng).copied().unwrap_or(URLS[0]);
        json!({"type": 4, "data": {"href": href, "width": 1440, "height": 900}, "timestamp": self.tick(1, 5)})
    }

    /// A DOM element with descendants until `budget` bytes of JSON are spent.
    fn dom_element(&mut self, depth: u32, budget: &mut isize) -> Value {
        self.next_node_id += 1;
        let id = self.next_node_id;
        let tag = TAGS.choose(&mut self.rng).copied().unwrap_or("div");
        let mut attributes = serde_json::Map::new();
        attributes.insert("class".into(), Value::String(self.class()));
        if self.rng.random_bool(0.2) {
            attributes.insert(
                "href".into(),
                Value::String(format!("/{}/{}", self.word(), self.word())),
            );
        }
        if self.rng.random_bool(0.15) {
            attributes.insert(
                "data-testid".into(),
                Value::String(format!("{}-{}", self.word(), id)),
            );
        }
        *budget -= 90;
        let mut children = Vec::new();
        let fanout = if depth < 3 { 6 } else { 4 };
        while *budget > 0 && children.len() < fanout && depth < 12 {
            if self.rng.random_bool(0.35) {
                self.next_node_id += 1;
                let n = self.rng.random_range(1..12);
                let text = self.words(n);
                *budget -= text.len() as isize + 40;
                children.push(json!({"type": 3, "textContent": text, "id": self.next_node_id}));
            } else {
                children.push(self.dom_element(depth + 1, budget));
            }
        }
        json!({"type": 2, "tagName": tag, "attributes": attributes, "childNodes": children, "id": id})
    }

    /// A full-snapshot event (rrweb EventType 2) of about `bytes` bytes.
    fn full_snapshot_event(&mut self, bytes: usize) -> Value {
        let mut budget = bytes as isize;
        let head_id = self.next_node_id + 1;
        self.next_node_id += 1;
        let mut body_children = Vec::new();
        while budget > 0 {
            body_children.push(self.dom_element(1, &mut budget));
        }
        self.next_node_id += 1;
        let body_id = self.next_node_id;
        json!({
            "type": 2,
            "data": {
                "node": {"type": 0, "childNodes": [
                    {"type": 1, "name": "html", "publicId": "", "systemId": "", "id": 2},
                    {"type": 2, "tagName": "html", "attributes": {"lang": "en"}, "childNodes": [
                        {"type": 2, "tagName": "head", "attributes": {}, "childNodes": [], "id": head_id},
                        {"type": 2, "tagName": "body", "attributes": {"class": "page"}, "childNodes": body_children, "id": body_id},
                    ], "id": 3},
                ], "id": 1},
                "initialOffset": {"left": 0, "top": 0},
            },
            "timestamp": self.tick(1, 5),
        })
    }

    fn batch_json(&mut self, session: &str, seq: u64, events: &[String]) -> Vec<u8> {
        let url = URLS.choose(&mut self.rng).copied().unwrap_or(URLS[0]);
        let mut out =
            String::with_capacity(events.iter().map(|e| e.len() + 1).sum::<usize>() + 256);
        let _ = write!(
            out,
            r#"{{"sessionId":"{session}","windowId":"tab-1","seq":{seq},"events":["#
        );
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(e);
        }
        let _ = write!(
            out,
            r#"],"metadata":{{"url":"{url}","sdk":"lucent-js/0.1.0","userAgent":"{USER_AGENT}"}}}}"#
        );
        out.into_bytes()
    }

    /// An incremental batch of about `bytes` bytes of JSON.
    pub fn incremental_batch(&mut self, session: &str, seq: u64, bytes: usize) -> Vec<u8> {
        let mut events = Vec::new();
        let mut size = 200;
        if seq == 0 {
            let meta = self.meta_event().to_string();
            size += meta.len() + 1;
            events.push(meta);
        }
        while size < bytes {
            let e = self.incremental_event().to_string();
            size += e.len() + 1;
            events.push(e);
        }
        self.batch_json(session, seq, &events)
    }

    /// A page load: Meta plus a full snapshot of about `bytes` bytes of JSON.
    pub fn full_snapshot_batch(&mut self, session: &str, seq: u64, bytes: usize) -> Vec<u8> {
        let events = vec![
            self.meta_event().to_string(),
            self.full_snapshot_event(bytes).to_string(),
        ];
        self.batch_json(session, seq, &events)
    }

    /// A random size in `range`.
    pub fn size_in(&mut self, range: std::ops::RangeInclusive<usize>) -> usize {
        self.rng.random_range(range)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n.max(1))
    }
}

/// `n_incremental` incremental and `n_full` full-snapshot bodies, gzipped.
pub fn bodies(seed: u64, n_incremental: usize, n_full: usize) -> Vec<Body> {
    let mut g = Generator::new(seed);
    let mut out = Vec::with_capacity(n_incremental + n_full);
    let session = g.session_id();
    for seq in 0..n_incremental {
        let size = g.size_in(INCREMENTAL_BYTES);
        let json = g.incremental_batch(&session, seq as u64, size);
        out.push(Body {
            kind: BodyKind::Incremental,
            raw_len: json.len(),
            wire: gzip(&json).into(),
        });
    }
    for seq in 0..n_full {
        let size = g.size_in(FULL_SNAPSHOT_BYTES);
        let json = g.full_snapshot_batch(&session, seq as u64, size);
        out.push(Body {
            kind: BodyKind::FullSnapshot,
            raw_len: json.len(),
            wire: gzip(&json).into(),
        });
    }
    out
}

/// Bodies of `n` messages as a site's sessions produce them, for the consumer:
/// sessions of `per_session` batches, each starting with a page load (Meta +
/// full snapshot) and going on with incremental batches, every
/// (session, window, seq) distinct so every batch is a new stored chunk.
/// Generated on all cores; deterministic for a seed.
pub fn session_bodies(seed: u64, n: usize, per_session: usize) -> Vec<Body> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_session = per_session.max(1);
    let sessions = n.div_ceil(per_session);
    let mut parts: Vec<Vec<Body>> = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut g = Generator::new(seed.wrapping_add(t as u64 * 7919));
                    let mut out = Vec::new();
                    for s in (t..sessions).step_by(threads) {
                        let session = g.session_id();
                        let count = per_session.min(n - s * per_session);
                        for seq in 0..count as u64 {
                            let (kind, json) = if seq == 0 {
                                let size = g.size_in(FULL_SNAPSHOT_BYTES);
                                (
                                    BodyKind::FullSnapshot,
                                    g.full_snapshot_batch(&session, seq, size),
                                )
                            } else {
                                let size = g.size_in(INCREMENTAL_BYTES);
                                (
                                    BodyKind::Incremental,
                                    g.incremental_batch(&session, seq, size),
                                )
                            };
                            out.push(Body {
                                kind,
                                raw_len: json.len(),
                                wire: gzip(&json).into(),
                            });
                        }
                    }
                    out
                })
            })
            .collect();
        for h in handles {
            parts.push(h.join().expect("generator threads do not panic"));
        }
    });
    parts.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lucent_common::domain::batch::{parse_body, Parsed};

    #[test]
    fn generated_batches_are_valid_and_in_their_size_ranges() {
        let bodies = bodies(7, 20, 2);
        for b in &bodies {
            let json = lucent_common::domain::codec::decode(
                &b.wire,
                lucent_common::domain::codec::Encoding::Gzip,
                1 << 24,
            )
            .unwrap();
            assert_eq!(json.len(), b.raw_len);
            let Parsed::Batches(batches) = parse_body(&json, usize::MAX) else {
                panic!("unreadable body")
            };
            assert!(batches.iter().all(|b| b.is_ok()), "{batches:?}");
            let (lo, hi) = match b.kind {
                BodyKind::Incremental => (*INCREMENTAL_BYTES.start(), *INCREMENTAL_BYTES.end()),
                BodyKind::FullSnapshot => {
                    (*FULL_SNAPSHOT_BYTES.start(), *FULL_SNAPSHOT_BYTES.end())
                }
            };
            assert!(
                b.raw_len >= lo && b.raw_len <= hi + hi / 4,
                "{:?} of {} bytes",
                b.kind,
                b.raw_len
            );
            // Real rrweb JSON compresses several times, not 100×.
            let ratio = b.raw_len as f64 / b.wire.len() as f64;
            assert!((2.0..40.0).contains(&ratio), "ratio {ratio}");
        }
    }
}

//! What a session is, aggregated from the summaries of its chunks (never from
//! their events): the row the read API lists, and whether it can be replayed.

use std::collections::BTreeMap;

/// How many missing `seq` numbers a window lists; the rest are only counted.
pub const MISSING_LISTED: usize = 100;

/// A stored chunk without its events: what listings and integrity are computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkMeta {
    pub window_id: String,
    pub seq: u64,
    pub part: u32,
    pub event_count: u32,
    pub first_event_ms: u64,
    pub last_event_ms: u64,
    pub has_full_snapshot: bool,
    pub raw_bytes: u64,
    pub url: Option<String>,
    pub user_agent: String,
    pub received_ms: u64,
}

/// One window (browser tab) of a session: which batches arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSeqs {
    pub window_id: String,
    /// Event time of the window's earliest event: tabs sort by it in the order
    /// they were opened, which their random ids do not tell.
    pub first_event_ms: u64,
    /// Distinct batches (`seq` numbers) stored.
    pub batches: u64,
    pub highest_seq: u64,
    /// The lowest missing `seq` numbers below `highest_seq`, at most [`MISSING_LISTED`].
    pub missing: Vec<u64>,
    /// All missing `seq` numbers below `highest_seq`.
    pub missing_count: u64,
}

/// Whether a session can be replayed as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// Every window has every batch up to its highest `seq`, and a full snapshot exists.
    Complete,
    /// Some window misses a batch below its highest `seq`.
    Gaps,
    /// No full snapshot (rrweb type 2): the player has nothing to start from.
    /// Reported over `Gaps`, being the worse of the two.
    NoFullSnapshot,
}

impl Integrity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Integrity::Complete => "complete",
            Integrity::Gaps => "gaps",
            Integrity::NoFullSnapshot => "no_full_snapshot",
        }
    }
}

/// The listing view of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    pub session_id: String,
    /// Receipt time (server clock) of the first batch stored: the listing's order.
    /// Set once, so a session never moves within a listing.
    pub first_received_ms: u64,
    /// Receipt time of the newest batch stored.
    pub last_received_ms: u64,
    pub first_event_ms: u64,
    pub last_event_ms: u64,
    pub event_count: u64,
    /// Uncompressed event bytes.
    pub raw_bytes: u64,
    pub has_full_snapshot: bool,
    /// URL of the earliest batch (by event time) that named one.
    pub first_url: Option<String>,
    /// User agent of the first batch received.
    pub user_agent: String,
    /// By window id.
    pub windows: Vec<WindowSeqs>,
}

impl SessionSummary {
    /// Folds the chunks of one session, in any order; `None` when there are none.
    /// A batch split into parts counts once as a batch and once per event.
    pub fn from_chunks(
        session_id: &str,
        first_received_ms: u64,
        chunks: impl IntoIterator<Item = ChunkMeta>,
    ) -> Option<SessionSummary> {
        // Per window: its seq numbers and its earliest event time.
        let mut seqs: BTreeMap<String, (Vec<u64>, u64)> = BTreeMap::new();
        let mut summary: Option<SessionSummary> = None;
        // (first event time, window, seq, part) of the chunk whose URL is kept.
        let mut url_from: Option<(u64, String, u64, u32)> = None;
        let mut agent_from = u64::MAX;
        for c in chunks {
            let window = seqs
                .entry(c.window_id.clone())
                .or_insert_with(|| (Vec::new(), u64::MAX));
            window.0.push(c.seq);
            window.1 = window.1.min(c.first_event_ms);
            let s = summary.get_or_insert_with(|| SessionSummary {
                session_id: session_id.to_string(),
                first_received_ms,
                last_received_ms: 0,
                first_event_ms: u64::MAX,
                last_event_ms: 0,
                event_count: 0,
                raw_bytes: 0,
                has_full_snapshot: false,
                first_url: None,
                user_agent: String::new(),
                windows: Vec::new(),
            });
            s.last_received_ms = s.last_received_ms.max(c.received_ms);
            s.first_event_ms = s.first_event_ms.min(c.first_event_ms);
            s.last_event_ms = s.last_event_ms.max(c.last_event_ms);
            s.event_count += u64::from(c.event_count);
            s.raw_bytes += c.raw_bytes;
            s.has_full_snapshot |= c.has_full_snapshot;
            if c.received_ms < agent_from {
                agent_from = c.received_ms;
                s.user_agent = c.user_agent.clone();
            }
            if let Some(url) = c.url {
                let at = (c.first_event_ms, c.window_id, c.seq, c.part);
                if url_from.as_ref().is_none_or(|kept| at < *kept) {
                    url_from = Some(at);
                    s.first_url = Some(url);
                }
            }
        }
        let mut summary = summary?;
        summary.windows = seqs
            .into_iter()
            .map(|(window_id, (seqs, first_event_ms))| {
                WindowSeqs::from_seqs(window_id, seqs, first_event_ms)
            })
            .collect();
        Some(summary)
    }

    pub fn integrity(&self) -> Integrity {
        if !self.has_full_snapshot {
            Integrity::NoFullSnapshot
        } else if self.windows.iter().any(|w| w.missing_count > 0) {
            Integrity::Gaps
        } else {
            Integrity::Complete
        }
    }

    /// Event time covered, in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.last_event_ms.saturating_sub(self.first_event_ms)
    }
}

impl WindowSeqs {
    /// From the `seq` numbers stored in a window, in any order, repeats allowed
    /// (one per part of a split batch).
    pub fn from_seqs(window_id: String, mut seqs: Vec<u64>, first_event_ms: u64) -> WindowSeqs {
        seqs.sort_unstable();
        seqs.dedup();
        let highest_seq = seqs.last().copied().unwrap_or(0);
        let mut missing = Vec::new();
        let mut expected = 0u64;
        for &seq in &seqs {
            // Only the first MISSING_LISTED are kept, so a window that claims
            // seq 2^60 costs no more than one with a short gap.
            let mut gap = expected;
            while gap < seq && missing.len() < MISSING_LISTED {
                missing.push(gap);
                gap += 1;
            }
            expected = seq + 1;
        }
        WindowSeqs {
            window_id,
            first_event_ms,
            batches: seqs.len() as u64,
            highest_seq,
            missing,
            missing_count: highest_seq + 1 - seqs.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(window: &str, seq: u64, part: u32) -> ChunkMeta {
        ChunkMeta {
            window_id: window.into(),
            seq,
            part,
            event_count: 2,
            first_event_ms: 1_000 + seq,
            last_event_ms: 2_000 + seq,
            has_full_snapshot: seq == 0,
            raw_bytes: 10,
            url: None,
            user_agent: format!("agent-{seq}"),
            received_ms: 5_000 + seq,
        }
    }

    #[test]
    fn a_session_with_every_batch_and_a_snapshot_is_complete() {
        let chunks = [meta("w", 1, 0), meta("w", 0, 0), meta("w", 1, 1)];
        let s = SessionSummary::from_chunks("s", 7, chunks).unwrap();
        assert_eq!(s.integrity(), Integrity::Complete);
        assert_eq!((s.event_count, s.raw_bytes), (6, 30));
        assert_eq!((s.first_event_ms, s.last_event_ms), (1_000, 2_001));
        assert_eq!((s.first_received_ms, s.last_received_ms), (7, 5_001));
        assert_eq!(s.user_agent, "agent-0");
        assert_eq!(s.windows.len(), 1);
        assert_eq!((s.windows[0].batches, s.windows[0].highest_seq), (2, 1));
    }

    #[test]
    fn missing_seqs_are_listed_per_window() {
        let chunks = [meta("a", 0, 0), meta("a", 3, 0), meta("b", 2, 0)];
        let s = SessionSummary::from_chunks("s", 0, chunks).unwrap();
        assert_eq!(s.integrity(), Integrity::Gaps);
        assert_eq!(s.windows[0].missing, [1, 2]);
        assert_eq!(s.windows[1].missing, [0, 1]);
        assert_eq!(s.windows[1].missing_count, 2);
    }

    #[test]
    fn no_full_snapshot_wins_over_gaps() {
        let s = SessionSummary::from_chunks("s", 0, [meta("a", 4, 0)]).unwrap();
        assert_eq!(s.integrity(), Integrity::NoFullSnapshot);
        assert_eq!(s.windows[0].missing_count, 4);
    }

    #[test]
    fn a_huge_seq_costs_a_capped_list() {
        let s = SessionSummary::from_chunks("s", 0, [meta("a", 0, 0), meta("a", 1 << 60, 0)]);
        let w = &s.unwrap().windows[0];
        assert_eq!(w.missing.len(), MISSING_LISTED);
        assert_eq!(w.missing_count, (1 << 60) - 1);
    }

    #[test]
    fn the_url_is_the_earliest_batchs_by_event_time() {
        let mut late = meta("a", 0, 0);
        late.url = Some("https://late".into());
        late.first_event_ms = 9_000;
        let mut early = meta("b", 5, 0);
        early.url = Some("https://early".into());
        let s = SessionSummary::from_chunks("s", 0, [late, early, meta("a", 1, 0)]).unwrap();
        assert_eq!(s.first_url.as_deref(), Some("https://early"));
    }

    #[test]
    fn no_chunks_is_no_session() {
        assert_eq!(SessionSummary::from_chunks("s", 0, []), None);
    }
}

//! Which offsets may be committed: per partition, everything below the oldest
//! message still in flight. Messages finish out of order; commits only ever
//! move over a contiguous run of finished ones.

use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Default)]
struct Partition {
    in_flight: BTreeSet<i64>,
    /// One past the highest offset handed out.
    next_after_started: i64,
    /// The last next-offset committed (or about to be).
    committed: i64,
}

/// In-flight offsets of every partition.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<i32, Partition>,
}

impl OffsetTracker {
    /// Records that `offset` of `partition` is being worked on.
    pub fn start(&mut self, partition: i32, offset: i64) {
        let p = self
            .partitions
            .entry(partition)
            .or_insert_with(|| Partition {
                committed: offset,
                ..Partition::default()
            });
        p.in_flight.insert(offset);
        p.next_after_started = p.next_after_started.max(offset + 1);
    }

    /// Records that `offset` of `partition` is stored or dead-lettered.
    pub fn finish(&mut self, partition: i32, offset: i64) {
        if let Some(p) = self.partitions.get_mut(&partition) {
            p.in_flight.remove(&offset);
        }
    }

    /// Partitions whose commit point moved since the last call, with the new
    /// next offset to commit. The caller commits them; on failure it calls
    /// [`OffsetTracker::rewind`] so they are offered again.
    pub fn take_commits(&mut self) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        for (&partition, p) in self.partitions.iter_mut() {
            let point = p.in_flight.first().copied().unwrap_or(p.next_after_started);
            if point > p.committed {
                p.committed = point;
                out.push((partition, point));
            }
        }
        out.sort_unstable();
        out
    }

    /// Forgets that a commit was taken, so the next `take_commits` offers it again.
    pub fn rewind(&mut self, partition: i32, to: i64) {
        if let Some(p) = self.partitions.get_mut(&partition) {
            p.committed = p.committed.min(to);
        }
    }

    /// Messages in flight over all partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(|p| p.in_flight.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commits_only_a_contiguous_finished_prefix() {
        let mut t = OffsetTracker::default();
        for o in 10..15 {
            t.start(0, o);
        }
        t.finish(0, 11);
        t.finish(0, 12);
        assert_eq!(t.take_commits(), vec![]);
        t.finish(0, 10);
        assert_eq!(t.take_commits(), vec![(0, 13)]);
        t.finish(0, 14);
        assert_eq!(t.take_commits(), vec![]);
        t.finish(0, 13);
        assert_eq!(t.take_commits(), vec![(0, 15)]);
    }

    #[test]
    fn partitions_are_independent_and_rewind_reoffers() {
        let mut t = OffsetTracker::default();
        t.start(0, 0);
        t.start(1, 100);
        t.finish(1, 100);
        assert_eq!(t.take_commits(), vec![(1, 101)]);
        t.rewind(1, 100);
        assert_eq!(t.take_commits(), vec![(1, 101)]);
        assert_eq!(t.in_flight(), 1);
    }

    proptest! {
        /// Whatever the finishing order, a commit never passes an unfinished offset.
        #[test]
        fn never_commits_past_unfinished_work(order in Just((0..40i64).collect::<Vec<_>>()).prop_shuffle(), cut in 0usize..40) {
            let mut t = OffsetTracker::default();
            for o in 0..40 { t.start(3, o); }
            let finished: Vec<i64> = order[..cut].to_vec();
            for &o in &finished { t.finish(3, o); }
            let lowest_unfinished = (0..40).find(|o| !finished.contains(o)).unwrap_or(40);
            let commits = t.take_commits();
            let point = commits.first().map(|c| c.1).unwrap_or(0);
            prop_assert_eq!(point, lowest_unfinished);
        }
    }
}

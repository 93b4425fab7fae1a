//! Slots for event streams: at most so many bodies sent at once per replica,
//! and at most so many of them for one organization, so that one tenant's
//! dashboards (or one leaked read key) cannot take every slot from the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The replica's event-stream slots.
pub struct StreamSlots {
    total: Arc<Semaphore>,
    per_org: usize,
    /// Slots held, by organization; an organization holding none has no entry.
    held: Mutex<HashMap<Arc<str>, usize>>,
}

/// One stream's slot, given back when dropped.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    org_id: Arc<str>,
    _total: OwnedSemaphorePermit,
}

impl StreamSlots {
    pub fn new(total: usize, per_org: usize) -> Arc<StreamSlots> {
        Arc::new(StreamSlots {
            total: Arc::new(Semaphore::new(total)),
            per_org: per_org.max(1),
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a stream of `org_id`, or None when the replica's or the
    /// organization's slots are all taken.
    pub fn try_take(self: &Arc<Self>, org_id: &Arc<str>) -> Option<StreamSlot> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.get(org_id).copied().unwrap_or(0);
        if count >= self.per_org {
            return None;
        }
        let permit = self.total.clone().try_acquire_owned().ok()?;
        held.insert(org_id.clone(), count + 1);
        Some(StreamSlot {
            slots: self.clone(),
            org_id: org_id.clone(),
            _total: permit,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.org_id) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.org_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_organization_gets_its_share_and_the_replica_its_total() {
        let slots = StreamSlots::new(3, 2);
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let a1 = slots.try_take(&a).unwrap();
        let _a2 = slots.try_take(&a).unwrap();
        assert!(slots.try_take(&a).is_none(), "a's share is taken");
        let b1 = slots.try_take(&b).unwrap();
        assert!(
            slots.try_take(&b).is_none(),
            "the replica's slots are taken"
        );
        drop(a1);
        assert!(slots.try_take(&a).is_some(), "a's slot came back");
        drop(b1);
        let _b2 = slots.try_take(&b).unwrap();
        assert_eq!(slots.held.lock().unwrap().len(), 2);
    }

    #[test]
    fn an_organization_holding_nothing_leaves_no_entry() {
        let slots = StreamSlots::new(4, 4);
        let a: Arc<str> = "a".into();
        drop(slots.try_take(&a).unwrap());
        assert!(slots.held.lock().unwrap().is_empty());
    }
}

//! Push-based waking: one event per approval request that blocked callers listen on.
//!
//! A waiter registers its listener *before* re-reading the request, so a decision that lands in
//! between is never missed. Entries hold weak references and vanish with their last waiter.

use event_listener::{Event, EventListener};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use uuid::Uuid;

/// Prune dead entries when the map grows past this many.
const PRUNE_AT: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct Wakeups {
    events: Mutex<HashMap<Uuid, Weak<Event>>>,
}

/// A registered interest in one request; keeps its event alive while held.
pub(crate) struct Subscription {
    _event: Arc<Event>,
    listener: EventListener,
}

impl Subscription {
    /// Completes at the next wake of the request.
    pub(crate) async fn woken(self) {
        self.listener.await;
    }
}

impl Wakeups {
    pub(crate) fn subscribe(&self, id: Uuid) -> Subscription {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if events.len() >= PRUNE_AT {
            events.retain(|_, event| event.strong_count() > 0);
        }
        let event = match events.get(&id).and_then(Weak::upgrade) {
            Some(event) => event,
            None => {
                let event = Arc::new(Event::new());
                events.insert(id, Arc::downgrade(&event));
                event
            }
        };
        let listener = event.listen();
        Subscription {
            _event: event,
            listener,
        }
    }

    /// Wakes every waiter (they re-read their requests, so a spurious wake is harmless).
    pub(crate) fn wake_all(&self) {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        events.retain(|_, event| match event.upgrade() {
            Some(event) => {
                event.notify(usize::MAX);
                true
            }
            None => false,
        });
    }

    pub(crate) fn wake(&self, id: Uuid) {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        match events.get(&id).and_then(Weak::upgrade) {
            Some(event) => {
                event.notify(usize::MAX);
            }
            None => {
                events.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn a_wake_after_subscribing_is_delivered_and_entries_are_dropped() {
        let wakeups = Wakeups::default();
        let id = Uuid::new_v4();
        let subscription = wakeups.subscribe(id);
        wakeups.wake(id);
        assert!(subscription.woken().now_or_never().is_some());
        wakeups.wake(id);
        assert!(wakeups.events.lock().unwrap().is_empty());
    }

    #[test]
    fn other_requests_do_not_wake() {
        let wakeups = Wakeups::default();
        let subscription = wakeups.subscribe(Uuid::new_v4());
        wakeups.wake(Uuid::new_v4());
        assert!(subscription.woken().now_or_never().is_none());
    }

    #[test]
    fn waking_all_reaches_every_waiter_and_drops_dead_entries() {
        let wakeups = Wakeups::default();
        let (one, two) = (Uuid::new_v4(), Uuid::new_v4());
        let first = wakeups.subscribe(one);
        let second = wakeups.subscribe(two);
        drop(wakeups.subscribe(Uuid::new_v4()));
        wakeups.wake_all();
        assert!(first.woken().now_or_never().is_some());
        assert!(second.woken().now_or_never().is_some());
        assert_eq!(
            wakeups.events.lock().unwrap().len(),
            2,
            "the dropped waiter's entry is gone"
        );
    }
}

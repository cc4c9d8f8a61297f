//! Which organizations' tool lists changed: what a server needs to send MCP clients
//! `notifications/tools/list_changed`.

use event_listener::Event;
use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

/// Organizations whose tools changed since they were last taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolChanges {
    /// Shared tools (the built-ins) changed: every organization's list did.
    pub everyone: bool,
    /// These organizations' own tools, settings or policy changed.
    pub organizations: BTreeSet<String>,
}

impl ToolChanges {
    /// Whether `organization`'s list changed.
    pub fn concerns(&self, organization: &str) -> bool {
        self.everyone || self.organizations.contains(organization)
    }

    fn is_empty(&self) -> bool {
        !self.everyone && self.organizations.is_empty()
    }
}

/// Collects changes and wakes whoever waits for them.
#[derive(Debug, Default)]
pub(super) struct ChangeFeed {
    pending: Mutex<ToolChanges>,
    changed: Event,
}

impl ChangeFeed {
    /// Notes a change of `organization`'s tools (`None`: the shared ones).
    pub(super) fn note(&self, organization: Option<&str>) {
        {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            match organization {
                Some(organization) => {
                    pending.organizations.insert(organization.to_owned());
                }
                None => pending.everyone = true,
            }
        }
        self.changed.notify(usize::MAX);
    }

    /// Waits for at least one change and takes everything noted so far.
    pub(super) async fn next(&self) -> ToolChanges {
        loop {
            let listener = self.changed.listen();
            {
                let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                if !pending.is_empty() {
                    return std::mem::take(&mut *pending);
                }
            }
            listener.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn changes_accumulate_until_taken() {
        let feed = ChangeFeed::default();
        feed.note(Some("acme"));
        feed.note(Some("globex"));
        let changes = block_on(feed.next());
        assert!(changes.concerns("acme") && changes.concerns("globex"));
        assert!(!changes.concerns("initech"));
        feed.note(None);
        assert!(block_on(feed.next()).concerns("initech"));
    }
}

//! Webhook deliveries: verified against the tracker's secret (constant time), deduplicated by
//! delivery id across replicas (a lease per delivery, kept a week), applied to the index at
//! once, and published as normalized events on the live bus.

use super::Trackers;
use crate::events::{Event, Topic};
use chrono::{TimeDelta, Utc};
use preloop_core::store::{IssueStore, LeaseStore, StoreError};
use preloop_core::tracker::TrackerEvent;
use preloop_trackers::webhook::{self, WebhookError};
use reqwest::header::HeaderMap;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

/// How long a delivery id is remembered: a replay within it is acknowledged and ignored.
const REMEMBERED: TimeDelta = TimeDelta::days(7);

/// What became of an authentic delivery.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookOutcome {
    /// The delivery's id.
    pub delivery_id: String,
    /// Whether the delivery was seen before (and so ignored).
    pub duplicate: bool,
    /// The normalized event (`issue.created`, ...), if the delivery reported one this
    /// tracker synchronizes.
    pub event: Option<String>,
    /// The issue's key, if any.
    pub issue: Option<String>,
}

/// Why a delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookRefusal {
    /// No tracker has this id.
    #[error("no tracker `{0}`")]
    NoTracker(Uuid),
    /// The delivery is not authentic, or not the tracker's.
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Trackers {
    /// Verifies and applies a delivery to tracker `id`'s webhook.
    pub async fn receive_webhook(
        &self,
        id: Uuid,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<WebhookOutcome, WebhookRefusal> {
        let tracker = self
            .connected
            .configs
            .read()
            .ok()
            .and_then(|configs| configs.get(&id).map(|(config, _)| config.clone()))
            .ok_or(WebhookRefusal::NoTracker(id))?;
        let delivery = webhook::receive(
            tracker.kind,
            tracker.webhook_secret.as_deref(),
            headers,
            body,
        )?;
        let now = Utc::now();
        let remembered = format!("tracker-webhook:{id}:{}", delivery.id);
        let first = self
            .store
            .try_lease(
                &remembered,
                &Uuid::new_v4().to_string(),
                now,
                now + REMEMBERED,
            )
            .await?;
        let mut outcome = WebhookOutcome {
            delivery_id: delivery.id,
            duplicate: !first,
            event: None,
            issue: None,
        };
        let Some(event) = delivery.event.filter(|_| first) else {
            return Ok(outcome);
        };
        // Only the projects this tracker synchronizes enter the index.
        if !tracker
            .projects
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&event.issue.project))
        {
            tracing::debug!(tracker = %tracker.name, project = %event.issue.project, "webhook delivery for a project not synchronized; ignored");
            return Ok(outcome);
        }
        self.store
            .upsert_issue(
                &tracker.organization_id,
                &id.to_string(),
                &event.issue,
                None,
            )
            .await?;
        outcome.event = Some(event.kind.as_str().to_owned());
        outcome.issue = Some(event.issue.key.clone());
        tracing::info!(tracker = %tracker.name, event = event.kind.as_str(), issue = %event.issue.key, "webhook delivery applied");
        self.publish(&tracker.organization_id, &tracker.name, &event);
        Ok(outcome)
    }

    fn publish(&self, organization_id: &str, tracker: &str, event: &TrackerEvent) {
        if !self.events.has_subscribers() {
            return;
        }
        self.events.publish(Event {
            topic: Topic::Issues,
            organization_id: Some(organization_id.to_owned()),
            request: None,
            data: json!({
                "event": event.kind.as_str(),
                "tracker": tracker,
                "issue": event.issue,
                "comment": event.comment,
            }),
        });
    }
}

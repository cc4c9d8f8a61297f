//! The delivery log: every message a channel sends about a request is a [`ChannelMessage`]
//! record (sending, delivered with the channel's handle on it, or failed with the last error),
//! written before the first attempt and after each one. It is the request's channel history, and
//! what channels read to update their messages once the request is decided — on any replica.

use backon::{ExponentialBuilder, Retryable};
use chrono::Utc;
use preloop_core::approval::ApprovalRequest;
use preloop_core::documents::{ChannelMessage, DeliveryStatus};
use preloop_core::store::DocumentStore;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Default attempts per message.
pub(crate) const DEFAULT_ATTEMPTS: usize = 5;

/// How long an update waits for the original message's delivery to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Why an attempt failed, and whether trying again can help.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) permanent: bool,
}

impl Failure {
    /// A failure that may pass (a timeout, a 5xx, a refused connection).
    pub(crate) fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    /// A failure that will not change by retrying (a refused address, a bad token).
    pub(crate) fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }
}

impl From<reqwest::Error> for Failure {
    fn from(error: reqwest::Error) -> Self {
        // Without the URL: webhook URLs carry their secret, and the error is stored and shown.
        Self::transient(error.without_url().to_string())
    }
}

/// POSTs `body` as JSON to an incoming webhook (`what` names it in errors): a 2xx delivers it;
/// a 4xx other than 429 will not change by retrying.
pub(crate) async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
    what: &str,
) -> Result<Value, Failure> {
    let response = http.post(url).json(body).send().await?;
    let status = response.status();
    if status.is_success() {
        return Ok(Value::Null);
    }
    let message = format!("{what} answered {status}");
    if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(Failure::permanent(message))
    } else {
        Err(Failure::transient(message))
    }
}

/// Writes and reads delivery records.
#[derive(Clone)]
pub(crate) struct Deliveries {
    store: Arc<dyn DocumentStore<ChannelMessage>>,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deliveries")
    }
}

/// One message to deliver.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    pub(crate) channel: &'static str,
    pub(crate) event: String,
    pub(crate) recipient: String,
    pub(crate) attempts: usize,
}

impl Deliveries {
    pub(crate) fn new(store: Arc<dyn DocumentStore<ChannelMessage>>) -> Self {
        Self { store }
    }

    /// Sends with `send` (retried with exponential backoff and jitter), recording every attempt;
    /// returns the delivered record. `send` returns the channel's handle on the message.
    pub(crate) async fn deliver<F, Fut>(
        &self,
        request: &ApprovalRequest,
        envelope: Envelope,
        initial_reference: Value,
        mut send: F,
    ) -> Option<ChannelMessage>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Value, Failure>>,
    {
        let mut record = ChannelMessage {
            organization_id: request.organization_id.clone(),
            request_id: request.id,
            channel: envelope.channel.to_owned(),
            event: envelope.event,
            recipient: envelope.recipient,
            status: DeliveryStatus::Sending,
            attempts: 0,
            last_error: None,
            reference: initial_reference,
            updated_at: Utc::now(),
        };
        self.save(&record, true).await;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(envelope.attempts.max(1) - 1)
            .with_jitter();
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let result = (|| {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            send()
        })
        .retry(backoff)
        .when(|failure: &Failure| !failure.permanent)
        .notify(|failure: &Failure, wait: Duration| {
            tracing::warn!(
                error = %failure.message, retry_in = ?wait, request = %record.request_id,
                channel = record.channel, event = record.event, "channel delivery failed"
            );
        })
        .await;
        record.attempts = attempts.into_inner();
        record.updated_at = Utc::now();
        let delivered = match result {
            Ok(reference) => {
                if !reference.is_null() {
                    record.reference = reference;
                }
                record.status = DeliveryStatus::Delivered;
                tracing::info!(
                    request = %record.request_id, channel = record.channel,
                    event = record.event, "channel delivered"
                );
                true
            }
            Err(Failure { message: error, .. }) => {
                tracing::error!(
                    %error, request = %record.request_id, channel = record.channel,
                    event = record.event, attempts = record.attempts, "channel delivery gave up"
                );
                record.status = DeliveryStatus::Failed;
                record.last_error = Some(error);
                false
            }
        };
        self.save(&record, false).await;
        delivered.then_some(record)
    }

    /// Saves a record; a store failure is logged (the delivery itself is what matters).
    async fn save(&self, record: &ChannelMessage, new: bool) {
        let saved = if new {
            match self.store.insert_document(record).await {
                // A re-sent event (e.g. a retried notification) replaces the earlier record.
                Err(preloop_core::store::StoreError::AlreadyExists) => {
                    self.store.update_document(record).await
                }
                other => other,
            }
        } else {
            self.store.update_document(record).await
        };
        if let Err(error) = saved {
            tracing::warn!(%error, request = %record.request_id, "cannot record a channel delivery");
        }
    }

    /// The request's channel history, in name order.
    pub(crate) async fn history(
        &self,
        organization_id: &str,
        request_id: uuid::Uuid,
    ) -> Result<Vec<ChannelMessage>, preloop_core::store::StoreError> {
        self.store
            .list_documents(organization_id, Some(&request_id.to_string()))
            .await
    }

    /// A record by its key, if it exists.
    pub(crate) async fn find(
        &self,
        organization_id: &str,
        request_id: uuid::Uuid,
        key: &str,
    ) -> Option<ChannelMessage> {
        self.store
            .get_document(organization_id, &format!("{request_id}/{key}"))
            .await
            .ok()
            .flatten()
    }

    /// The messages `channel` delivered about the request (not its updates), once none of them
    /// is still being sent (a decision can land while the first message is on its way).
    pub(crate) async fn sent(
        &self,
        request: &ApprovalRequest,
        channel: &str,
    ) -> Vec<ChannelMessage> {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        loop {
            let records: Vec<ChannelMessage> = self
                .history(&request.organization_id, request.id)
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.channel == channel && r.event != "decided")
                .collect();
            let settled = records.iter().all(|r| r.status != DeliveryStatus::Sending);
            if settled || tokio::time::Instant::now() >= deadline {
                return records
                    .into_iter()
                    .filter(|r| r.status == DeliveryStatus::Delivered)
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

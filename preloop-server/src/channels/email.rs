//! The e-mail channel: one message per approver over SMTP (STARTTLS, implicit TLS, or plain for a
//! local relay; optional authentication), text and HTML. Each approver's message carries a
//! personal link to the request's decision page ([`crate::web::decision_page`]): a signed token saying
//! this user may vote on this request until it expires, so the vote is theirs (quorum and
//! self-approval rules apply) and the audit log names them. The page decides only on a POST from
//! its form, so mail scanners that follow links cannot vote. Approvers are the users the approval
//! policy names at the stage reached (escalation mails go to the newly added ones), except a
//! requester who may not approve their own call; the extra `to` addresses get a link to the
//! request in the console instead.

use super::deliveries::{DEFAULT_ATTEMPTS, Envelope, Failure};
use super::message::Summary;
use super::{Channel, ChannelsError, Context, Event};
use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use maud::{Markup, html};
use preloop_core::approval::ApprovalRequest;
use preloop_core::store::AccountStore;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// `[channels.email]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server: `smtp://user:password@host:587?tls=required` (STARTTLS),
    /// `smtps://user:password@host:465` (TLS), `smtp://host:25` (plain; local relays only).
    pub url: String,
    /// The sender, e.g. `Preloop <preloop@example.com>`.
    pub from: String,
    /// Addresses that get every message besides the approvers.
    #[serde(default)]
    pub to: Vec<String>,
    /// Attempts per message (default 5).
    pub max_attempts: Option<usize>,
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("url", &"<redacted>")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

/// The configured e-mail channel.
pub(super) struct Email {
    from: Mailbox,
    to: Vec<Mailbox>,
    attempts: usize,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    context: Context,
    accounts: Arc<dyn AccountStore>,
}

impl Email {
    pub(super) fn new(
        config: EmailConfig,
        context: Context,
        accounts: Arc<dyn AccountStore>,
    ) -> Result<Self, ChannelsError> {
        let mailbox = |address: &str| {
            address
                .parse::<Mailbox>()
                .map_err(|source| ChannelsError::EmailAddress {
                    address: address.to_owned(),
                    source,
                })
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.url)
            .map_err(|source| ChannelsError::SmtpUrl { source })?
            .timeout(Some(Duration::from_secs(20)))
            .build();
        Ok(Self {
            from: mailbox(&config.from)?,
            to: config
                .to
                .iter()
                .map(|a| mailbox(a))
                .collect::<Result<_, _>>()?,
            attempts: config.max_attempts.unwrap_or(DEFAULT_ATTEMPTS),
            transport,
            context,
            accounts,
        })
    }

    /// Who to write to, with the user a personal decision link is for: the approvers the
    /// policy names at the stage reached (for an escalation, those the new stage added), except
    /// the requester when they may not approve their own call; then the configured `to`
    /// addresses, without a personal link (they get the console's).
    async fn recipients(&self, event: &Event) -> Vec<(Mailbox, Option<String>)> {
        let request = &event.request;
        let users = match self.accounts.list_users(&request.organization_id).await {
            Ok(users) => users,
            Err(error) => {
                tracing::error!(%error, request = %request.id, "cannot list approvers for e-mail");
                Vec::new()
            }
        };
        let reached = request.escalation_stage;
        let mut recipients: Vec<(Mailbox, Option<String>)> = users
            .iter()
            .filter(|user| !user.disabled)
            .filter(|user| {
                let principal = user.principal();
                let now = request.policy.is_approver(&principal, reached);
                match event.stage {
                    Some(stage) => now && !request.policy.is_approver(&principal, stage),
                    None => now,
                }
            })
            .filter(|user| user.id != request.requester.id || request.policy.allow_self_approval)
            .filter_map(|user| {
                let mailbox = user.email.parse::<Mailbox>().ok()?;
                Some((mailbox, Some(user.id.clone())))
            })
            .collect();
        for extra in &self.to {
            if !recipients.iter().any(|(r, _)| r.email == extra.email) {
                recipients.push((extra.clone(), None));
            }
        }
        recipients
    }

    fn message(
        &self,
        to: &Mailbox,
        approver: Option<&str>,
        event: &Event,
        summary: &Summary,
    ) -> Result<Message, lettre::error::Error> {
        // Approvers get a personal link (their vote, under the policy's rules); other addresses
        // the request in the console, where they would have to sign in.
        let link = match approver {
            Some(user_id) => self.context.approver_page(&event.request, user_id),
            None => self.context.console_page(event.request.id),
        };
        let subject = summary.title();
        let mut text = summary.text();
        text.push_str("\n\n");
        text.push_str(&format!("Approve or decline: {link}\n"));
        Message::builder()
            .from(self.from.clone())
            .to(to.clone())
            .subject(subject)
            .multipart(MultiPart::alternative_plain_html(
                text,
                html_body(summary, &link).into_string(),
            ))
    }
}

fn html_body(summary: &Summary, link: &str) -> Markup {
    html! {
        div style="font-family: sans-serif; max-width: 40em" {
            h2 { (summary.title()) }
            table style="border-collapse: collapse" {
                @for (label, value) in summary.fields() {
                    tr {
                        th style="text-align: left; padding: 2px 12px 2px 0; vertical-align: top" { (label) }
                        td style="white-space: pre-wrap" { (value) }
                    }
                }
            }
            h3 { "Arguments" }
            pre style="background: #f4f4f4; padding: 8px; overflow-x: auto" { (summary.arguments) }
            p {
                a href=(link) style="display: inline-block; padding: 10px 18px; background: #1f6feb; color: #fff; text-decoration: none; border-radius: 6px" {
                    "Review and decide"
                }
            }
        }
    }
}

#[async_trait]
impl Channel for Email {
    fn name(&self) -> &'static str {
        "email"
    }

    async fn send(&self, event: &Event) {
        // A mail cannot be updated once sent: decisions are not mailed.
        if event.is_decided() {
            return;
        }
        let summary = event.summary(&self.context.redactor);
        let recipients = self.recipients(event).await;
        if recipients.is_empty() {
            tracing::warn!(request = %event.request.id, "no e-mail recipients for an approval request");
        }
        for (to, approver) in recipients {
            let message = match self.message(&to, approver.as_deref(), event, &summary) {
                Ok(message) => message,
                Err(error) => {
                    tracing::error!(%error, "cannot build an approval e-mail");
                    continue;
                }
            };
            let envelope = Envelope {
                channel: "email",
                event: event.name.clone(),
                recipient: to.email.to_string(),
                attempts: self.attempts,
            };
            deliver(self, &event.request, envelope, &message).await;
        }
    }
}

async fn deliver(email: &Email, request: &ApprovalRequest, envelope: Envelope, message: &Message) {
    email
        .context
        .deliveries
        .deliver(request, envelope, Value::Null, || async {
            match email.transport.send(message.clone()).await {
                Ok(_) => Ok(Value::Null),
                // A 5xx refusal (unknown mailbox, rejected sender) will not change.
                Err(error) if error.is_permanent() => Err(Failure::permanent(error.to_string())),
                Err(error) => Err(Failure::transient(error.to_string())),
            }
        })
        .await;
}

//! What every channel says about a request: one [`Summary`] (with secrets redacted), which each
//! channel renders in its own markup, and the one-line outcome channels show once it is decided.

use super::Redactor;
use chrono::{DateTime, Utc};
use preloop_core::approval::{ApprovalRequest, ApprovalState, VoteDecision};
use uuid::Uuid;

/// Longest argument text a chat message carries (Slack sections hold 3,000 characters, Telegram
/// messages 4,096); longer arguments are cut, and the full ones are one click away.
const MAX_ARGUMENTS_CHARS: usize = 2_500;

/// The facts an approver needs, ready to render.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub(crate) id: Uuid,
    pub(crate) tool: String,
    pub(crate) server: String,
    pub(crate) requester: String,
    /// Pretty-printed arguments with secret-looking values redacted, cut to a chat-sized length.
    pub(crate) arguments: String,
    pub(crate) rule: Option<String>,
    /// The agent's stated operation, context and reasoning, joined.
    pub(crate) reason: Option<String>,
    pub(crate) policy: String,
    pub(crate) expires_at: DateTime<Utc>,
    /// Sent because an escalation stage started (the title says so).
    pub(crate) escalated: bool,
}

impl Summary {
    pub(crate) fn of(request: &ApprovalRequest, redactor: &Redactor) -> Self {
        let arguments =
            serde_json::to_string_pretty(&redactor.redact(request.effective_arguments()))
                .unwrap_or_default();
        let context = &request.context;
        let reason: Vec<&str> = [&context.operation, &context.context, &context.reasoning]
            .into_iter()
            .filter_map(|part| part.as_deref())
            .filter(|part| !part.trim().is_empty())
            .collect();
        Self {
            id: request.id,
            tool: request.tool.exposed_name.clone(),
            server: request.tool.server.clone(),
            requester: request.requester.display_name(),
            arguments: truncate(&arguments, MAX_ARGUMENTS_CHARS),
            rule: request.matched_rule.clone(),
            reason: (!reason.is_empty()).then(|| reason.join("\n")),
            policy: request.policy.name.clone(),
            expires_at: request.expires_at,
            escalated: false,
        }
    }

    /// A subject line.
    pub(crate) fn title(&self) -> String {
        let escalated = if self.escalated { "Escalated: " } else { "" };
        format!(
            "{escalated}Approval needed: {} requested by {}",
            self.tool, self.requester
        )
    }

    /// The labelled facts, in the order every channel shows them.
    pub(crate) fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("Tool", self.tool.clone()),
            ("Server", self.server.clone()),
            ("Requested by", self.requester.clone()),
        ];
        if let Some(rule) = &self.rule {
            fields.push(("Rule", rule.clone()));
        }
        if let Some(reason) = &self.reason {
            fields.push(("Reason", reason.clone()));
        }
        fields.push(("Approval policy", self.policy.clone()));
        fields.push((
            "Expires",
            self.expires_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        ));
        fields.push(("Request", self.id.to_string()));
        fields
    }

    /// Plain text: the title, the facts, the arguments.
    pub(crate) fn text(&self) -> String {
        let mut text = self.title();
        text.push_str("\n\n");
        for (label, value) in self.fields() {
            text.push_str(&format!("{label}: {value}\n"));
        }
        text.push_str("\nArguments:\n");
        text.push_str(&self.arguments);
        text
    }
}

/// One line saying how a decided request ended ("Approved by alice@example.com").
pub(crate) fn outcome(request: &ApprovalRequest) -> String {
    let voters = |decision: VoteDecision| {
        request
            .votes
            .iter()
            .filter(|vote| vote.decision == decision)
            .map(|vote| {
                vote.approver_email
                    .clone()
                    .unwrap_or_else(|| vote.approver_id.clone())
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let by = |verb: &str, decision: VoteDecision| {
        let who = voters(decision);
        if who.is_empty() {
            verb.to_owned()
        } else {
            format!("{verb} by {who}")
        }
    };
    match request.state {
        ApprovalState::Pending => "Waiting for a decision".to_owned(),
        ApprovalState::Approved | ApprovalState::Executing | ApprovalState::Executed => {
            by("Approved", VoteDecision::Approve)
        }
        ApprovalState::Failed => format!(
            "{} (the call failed)",
            by("Approved", VoteDecision::Approve)
        ),
        ApprovalState::Declined => by("Declined", VoteDecision::Decline),
        ApprovalState::Expired => match &request.resolution {
            Some(resolution) => format!("Expired: {resolution}"),
            None => "Expired".to_owned(),
        },
        ApprovalState::Cancelled => match &request.resolution {
            Some(resolution) => format!("Cancelled: {resolution}"),
            None => "Cancelled".to_owned(),
        },
    }
}

/// `text` cut to at most `max` characters (on a character boundary), marked when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}\n… (cut; open the request for the rest)", &text[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_short_text_and_cuts_on_character_boundaries() {
        assert_eq!(truncate("héllo", 5), "héllo");
        let cut = truncate("ééééé", 2);
        assert!(cut.starts_with("éé\n…"), "{cut}");
    }
}

//! An agent loop governed in-process: no server, no database.
//!
//! Three calls: one allowed, one denied, one held until a simulated human, running on another
//! task, approves it. The human hears about the request through a `Notifier`, the same hook the
//! server's e-mail, Slack and web channels use.
//!
//! ```text
//! cargo run --example embed_governor
//! ```

use async_trait::async_trait;
use preloop_core::Principal;
use preloop_core::approval::VoteCast;
use preloop_core::audit::verify_chain;
use preloop_core::executor::{FnExecutor, ToolOutput};
use preloop_core::governor::{Governor, Notification, Notifier, NotifyError, Outcome, ToolCall};
use preloop_core::policy::{Format, GovernanceDocument};
use preloop_core::registry::{RegisteredTool, Registry, ToolDescriptor, ToolSource};
use preloop_core::store::{AuditStore, MemoryStore};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::mpsc;
use uuid::Uuid;

const POLICY: &str = r#"
[[approval_policies]]
name = "finance"
approvers = ["role:finance"]
timeout = "5m"

[policy]
default = "allow"

[[policy.rules]]
id = "no-deletes"
tools = ["*__delete_*"]
action = "deny"
message = "Deleting customer data is not allowed"

[[policy.rules]]
id = "big-refunds"
tools = ["payments__refund"]
when = 'args.amount > 100'
action = "require_approval"
approval_policy = "finance"
"#;

/// Forwards every new approval request to the "human" task.
#[derive(Debug)]
struct ChannelNotifier(mpsc::UnboundedSender<Uuid>);

#[async_trait]
impl Notifier for ChannelNotifier {
    async fn notify(&self, notification: Notification<'_>) -> Result<(), NotifyError> {
        if let Notification::Created { request, .. } = notification {
            println!(
                "  [notify] approval needed for {} {} (request {})",
                request.tool.exposed_name, request.original_arguments, request.id
            );
            self.0
                .send(request.id)
                .map_err(|e| NotifyError(e.to_string()))?;
        }
        Ok(())
    }
}

fn tool(server: &str, name: &str) -> RegisteredTool {
    RegisteredTool::new(
        ToolDescriptor::new(server, name, ToolSource::Embedded),
        Arc::new(FnExecutor::new(|tool, args| {
            Ok(ToolOutput::text(format!(
                "{} done with {args}",
                tool.exposed_name
            )))
        })),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = Arc::new(Registry::new());
    for (server, name) in [
        ("crm", "get_customer"),
        ("crm", "delete_customer"),
        ("payments", "refund"),
    ] {
        registry.register(tool(server, name))?;
    }
    let (to_human, mut human_inbox) = mpsc::unbounded_channel();
    let store = Arc::new(MemoryStore::new());
    let governor = Arc::new(
        Governor::builder(registry)
            .store(store.clone())
            .notifier(Arc::new(ChannelNotifier(to_human)))
            .build(),
    );
    governor.set_policy("acme", &GovernanceDocument::parse(POLICY, Format::Toml)?)?;

    // The human approver works on another task and approves whatever reaches the inbox.
    let human = Principal::new("u-42", "acme")
        .with_email("dana@acme.example")
        .with_role("finance");
    let approver_governor = governor.clone();
    let approver = tokio::spawn(async move {
        while let Some(request_id) = human_inbox.recv().await {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let vote =
                VoteCast::approve(human.clone()).with_comment("refund checked against the ticket");
            match approver_governor.decide(&human, request_id, vote).await {
                Ok(request) => println!(
                    "  [human] approved; request {request_id} is now {}",
                    request.state
                ),
                Err(error) => println!("  [human] could not approve: {error}"),
            }
        }
    });

    let agent = Principal::new("agent-7", "acme").with_role("agent");
    let plan = [
        ("crm__get_customer", json!({"id": 17})),
        ("crm__delete_customer", json!({"id": 17})),
        ("payments__refund", json!({"customer": 17, "amount": 250})),
    ];
    for (tool, arguments) in plan {
        println!("agent calls {tool} {arguments}");
        let started = std::time::Instant::now();
        let outcome = governor
            .call(&agent, ToolCall::new(tool, arguments))
            .await?;
        let verdict = match &outcome {
            Outcome::Executed { .. } => "executed",
            Outcome::Denied { .. } => "denied",
            Outcome::PendingApproval { .. } => "still pending",
            _ => "not executed",
        };
        println!(
            "  -> {verdict} after {:?}: {}\n",
            started.elapsed(),
            outcome.message()
        );
    }

    let events = store.events("acme", 1, 0).await?;
    let summary = verify_chain(&events)?;
    println!(
        "audit log: {} events, chain intact, head {}",
        summary.events,
        &summary.head[..16]
    );
    for event in &events {
        let kind = serde_json::to_value(&event.kind)?;
        println!(
            "  #{:<2} {}",
            event.sequence,
            kind["type"].as_str().unwrap_or("?")
        );
    }
    drop(governor);
    approver.abort();
    Ok(())
}

//! Loads a policy file and explains the decision for each call given on the command line.
//!
//! ```text
//! cargo run --example policy_playground -- examples/policy.toml \
//!     'time__convert_time={"target_timezone":"Asia/Tokyo"}' fs__delete_file github__get_issue \
//!     --role agent --user bot@example.com
//! ```
//!
//! A call is `TOOL` or `TOOL=JSON_ARGUMENTS`; the tool's server is the part before `__`.
//! Tools are treated as unannotated (MCP's defaults: destructive, open world).

use preloop_core::policy::{EvaluationInput, Format, Governance, GovernanceDocument};
use preloop_core::registry::{ToolDescriptor, ToolSource};
use preloop_core::{ClientInfo, Principal};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!(
                "usage: policy_playground POLICY_FILE CALL... [--role ROLE]... [--user EMAIL]"
            );
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
    let mut principal = Principal::new("playground", "playground");
    let mut positional = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--role" => principal
                .roles
                .push(args.next().ok_or("--role needs a value")?),
            "--user" => principal.email = Some(args.next().ok_or("--user needs a value")?),
            _ => positional.push(arg),
        }
    }
    let (path, calls) = positional.split_first().ok_or("no policy file given")?;
    if calls.is_empty() {
        return Err("no call given".into());
    }
    let format =
        Format::from_file_name(path).ok_or("the policy file must end in .toml, .yaml or .yml")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let document = GovernanceDocument::parse(&text, format).map_err(|e| format!("{path}: {e}"))?;
    let governance = Governance::compile(&document).map_err(|e| format!("{path}:\n{e}"))?;
    println!(
        "{path}: {} rule(s), default {:?}; principal roles {:?}\n",
        document.policy.rules.len(),
        document.policy.default,
        principal.roles
    );
    for call in calls {
        let (tool_name, arguments) = match call.split_once('=') {
            Some((tool, json)) => (
                tool,
                serde_json::from_str(json).map_err(|e| format!("arguments of {tool}: {e}"))?,
            ),
            None => (call.as_str(), serde_json::json!({})),
        };
        let (server, name) = tool_name.split_once("__").unwrap_or(("builtin", tool_name));
        let tool =
            ToolDescriptor::new(server, name, ToolSource::Upstream).with_exposed_name(tool_name);
        let decision = governance.policy().evaluate(&EvaluationInput {
            tool: &tool,
            args: &arguments,
            principal: &principal,
            client: &ClientInfo::named("policy-playground"),
            now: chrono::Utc::now(),
        });
        println!("{tool_name} {arguments}\n  -> {}\n", decision.explanation());
    }
    Ok(())
}

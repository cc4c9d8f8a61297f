//! CEL conditions: any text compiles or is refused with an error, and a compiled condition
//! evaluates against any arguments to a decision (an error fails closed), within its budget.
//! Input: the condition, a NUL byte, then the call's arguments as JSON.

#![no_main]

use libfuzzer_sys::fuzz_target;
use preloop_core::policy::{ActionKind, EvaluationInput, PolicyDocument, PolicySet, RuleSpec};
use preloop_core::registry::{ToolDescriptor, ToolSource};
use preloop_core::{ClientInfo, Principal};

fuzz_target!(|data: &[u8]| {
    let (condition, arguments) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b"{}"[..]),
    };
    let Ok(condition) = std::str::from_utf8(condition) else {
        return;
    };
    let mut rule = RuleSpec::new(ActionKind::Deny, ["*"]);
    rule.when = Some(condition.to_owned());
    let document = PolicyDocument {
        rules: vec![rule],
        ..PolicyDocument::default()
    };
    let Ok(set) = PolicySet::compile(&document) else {
        return;
    };
    let arguments: serde_json::Value =
        serde_json::from_slice(arguments).unwrap_or_else(|_| serde_json::json!({}));
    let tool = ToolDescriptor::new("fs", "read_file", ToolSource::Upstream);
    let principal = Principal::new("u", "org").with_role("agent");
    let client = ClientInfo::named("fuzz");
    let input = EvaluationInput {
        tool: &tool,
        args: &arguments,
        principal: &principal,
        client: &client,
        now: chrono::Utc::now(),
    };
    let _ = set.evaluate(&input);
});

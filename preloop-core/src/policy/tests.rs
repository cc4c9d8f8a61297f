//! Tests of compilation and evaluation.

use super::*;
use crate::principal::{ClientInfo, Principal};
use crate::registry::{OperationKind, ToolAnnotations, ToolDescriptor, ToolSource};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

fn tool(server: &str, name: &str) -> ToolDescriptor {
    ToolDescriptor::new(server, name, ToolSource::Upstream)
}

fn agent() -> Principal {
    Principal::new("agent-1", "acme")
        .with_email("bot@acme.dev")
        .with_role("agent")
}

fn admin() -> Principal {
    Principal::new("admin-1", "acme")
        .with_email("root@acme.dev")
        .with_role("admin")
}

fn compile(toml: &str) -> PolicySet {
    let document = GovernanceDocument::parse(toml, Format::Toml).unwrap();
    PolicySet::compile(&document.policy).unwrap()
}

fn decide_as(
    set: &PolicySet,
    tool: &ToolDescriptor,
    args: Value,
    principal: &Principal,
) -> Decision {
    set.evaluate(&EvaluationInput {
        tool,
        args: &args,
        principal,
        client: &ClientInfo::named("claude-code"),
        now: Utc.with_ymd_and_hms(2026, 3, 2, 9, 30, 0).unwrap(),
    })
}

fn decide(set: &PolicySet, tool: &ToolDescriptor, args: Value) -> Decision {
    decide_as(set, tool, args, &agent())
}

fn compile_error(toml: &str) -> String {
    let document = GovernanceDocument::parse(toml, Format::Toml).unwrap();
    Governance::compile(&document).unwrap_err().to_string()
}

fn resource(server: &str, uri: &str) -> ToolDescriptor {
    tool(server, uri)
        .with_exposed_name(uri)
        .with_kind(OperationKind::Resource)
}

#[test]
fn prompts_and_resources_match_only_the_rules_that_name_them() {
    let set = compile(
        r#"
[policy]
default = "allow"
[[policy.rules]]
id = "secrets"
resources = ["file:///etc/*"]
servers = ["fs"]
action = "deny"
message = "no system files"
[[policy.rules]]
id = "admin-prompts"
prompts = ["ops__*"]
when = 'tool.kind == "prompt" && args.env == "prod"'
action = "deny"
[[policy.rules]]
id = "every-tool"
action = "require_approval"
"#,
    );
    let secret = decide(&set, &resource("fs", "file:///etc/shadow"), json!({}));
    assert_eq!(secret.rule().unwrap().id, "secrets");
    assert!(matches!(secret.effect, Effect::Deny { .. }));
    // Another server's URI, or a tool named like the URI, is not the rule's.
    let other = decide(&set, &resource("web", "file:///etc/shadow"), json!({}));
    assert_eq!(other.effect, Effect::Allow);
    let named_like = decide(&set, &tool("fs", "file:///etc/shadow"), json!({}));
    assert_eq!(named_like.rule().unwrap().id, "every-tool");

    let prompt = tool("ops", "restart").with_kind(OperationKind::Prompt);
    let prod = decide(&set, &prompt, json!({"env": "prod"}));
    assert_eq!(prod.rule().unwrap().id, "admin-prompts");
    assert_eq!(
        decide(&set, &prompt, json!({"env": "dev"})).effect,
        Effect::Allow
    );
    // The rule without `tools` covers every tool, and no prompt or resource.
    let call = decide(&set, &tool("ops", "restart"), json!({}));
    assert_eq!(call.rule().unwrap().id, "every-tool");
    assert!(set.denies_unconditionally(&resource("fs", "file:///etc/passwd"), &agent()));
    assert!(!set.denies_unconditionally(&prompt, &agent()));

    let error = compile_error(
        r#"
[[policy.rules]]
tools = []
action = "deny"
"#,
    );
    assert!(
        error.contains("no prompts, resources or questions"),
        "{error}"
    );
}

#[test]
fn questions_match_only_the_rules_that_name_them_by_server() {
    let set = compile(
        r#"
[policy]
default = "allow"
[[policy.rules]]
id = "no-sampling-for-docs"
questions = ["sampling/*"]
servers = ["docs"]
action = "deny"
[[policy.rules]]
id = "short-prompts"
questions = ["sampling/createMessage"]
when = 'args.maxTokens > 1000'
action = "deny"
[[policy.rules]]
id = "every-tool"
action = "require_approval"
"#,
    );
    let question = |server: &str, method: &str| {
        tool(server, method)
            .with_exposed_name(method)
            .with_kind(OperationKind::Question)
    };
    let docs = decide(&set, &question("docs", "sampling/createMessage"), json!({}));
    assert_eq!(docs.rule().unwrap().id, "no-sampling-for-docs");
    let small = decide(
        &set,
        &question("web", "sampling/createMessage"),
        json!({"maxTokens": 10}),
    );
    assert_eq!(
        small.effect,
        Effect::Allow,
        "the rule without tools covers no question"
    );
    let large = decide(
        &set,
        &question("web", "sampling/createMessage"),
        json!({"maxTokens": 5000}),
    );
    assert_eq!(large.rule().unwrap().id, "short-prompts");
    let roots = decide(&set, &question("docs", "roots/list"), json!({}));
    assert_eq!(roots.effect, Effect::Allow);
    assert!(set.denies_unconditionally(&question("docs", "sampling/createMessage"), &agent()));
}

#[test]
fn every_action_and_the_default() {
    let set = compile(
        r#"
[policy]
default = "deny"
default_message = "not on the list"
[[policy.rules]]
id = "reads"
tools = ["fs__read_*"]
action = "allow"
[[policy.rules]]
id = "deletes"
tools = ["fs__delete_*"]
action = "deny"
message = "Deletions are not allowed"
[[policy.rules]]
id = "writes"
tools = ["fs__write_*"]
action = "require_approval"
approval_policy = "ops"
"#,
    );
    let allow = decide(&set, &tool("fs", "read_file"), json!({}));
    assert_eq!(allow.effect, Effect::Allow);
    assert_eq!(allow.rule().unwrap().id, "reads");

    let deny = decide(&set, &tool("fs", "delete_file"), json!({}));
    assert_eq!(
        deny.effect,
        Effect::Deny {
            message: "Deletions are not allowed".into()
        }
    );
    assert!(
        deny.explanation().contains("rule `deletes`"),
        "{}",
        deny.explanation()
    );

    let approval = decide(&set, &tool("fs", "write_file"), json!({}));
    assert_eq!(
        approval.effect,
        Effect::RequireApproval {
            approval_policy: Some("ops".into())
        }
    );

    let default = decide(&set, &tool("net", "fetch"), json!({}));
    assert_eq!(
        default.effect,
        Effect::Deny {
            message: "not on the list".into()
        }
    );
    assert_eq!(default.reason, Reason::Default);
    assert!(
        default.explanation().contains("default action"),
        "{}",
        default.explanation()
    );
}

#[test]
fn the_first_matching_rule_wins_and_rule_ids_default_to_positions() {
    let set = compile(
        r#"
[[policy.rules]]
tools = ["github__*"]
action = "require_approval"
[[policy.rules]]
tools = ["github__get_issue"]
action = "allow"
"#,
    );
    let decision = decide(&set, &tool("github", "get_issue"), json!({}));
    assert_eq!(decision.rule().unwrap().id, "rule-1");
    assert_eq!(decision.candidates, 2);
}

#[test]
fn patterns_match_the_exposed_or_the_own_name_and_servers_filter() {
    let set = compile(
        r#"
[[policy.rules]]
id = "own-name"
tools = ["convert_time"]
action = "deny"
[[policy.rules]]
id = "server-filter"
tools = ["*"]
servers = ["prod-*"]
action = "require_approval"
"#,
    );
    assert_eq!(
        decide(&set, &tool("time", "convert_time"), json!({}))
            .rule()
            .unwrap()
            .id,
        "own-name"
    );
    assert_eq!(
        decide(&set, &tool("prod-db", "query"), json!({}))
            .rule()
            .unwrap()
            .id,
        "server-filter"
    );
    assert_eq!(
        decide(&set, &tool("dev-db", "query"), json!({})).effect,
        Effect::Allow
    );
    let transparent = tool("time", "now").with_exposed_name("now");
    assert_eq!(decide(&set, &transparent, json!({})).effect, Effect::Allow);
}

#[test]
fn only_rules_whose_patterns_match_are_candidates() {
    let mut rules = String::new();
    for i in 0..200 {
        rules.push_str(&format!(
            "[[policy.rules]]\ntools = [\"svc{i}__*\"]\nwhen = 'args.n > {i}'\naction = \"deny\"\n"
        ));
    }
    let set = compile(&rules);
    let decision = decide(&set, &tool("svc7", "op"), json!({"n": 100}));
    assert_eq!(decision.candidates, 1);
    assert_eq!(decision.rule().unwrap().index, 7);
    // Memoized candidates are recomputed when the same exposed name now describes another tool.
    let mut changed = tool("svc7", "op");
    changed.name = "svc9__op".into();
    assert_eq!(decide(&set, &changed, json!({"n": 100})).candidates, 2);
}

#[test]
fn principals_restrict_rules() {
    let set = compile(
        r#"
[[policy.rules]]
tools = ["*"]
principals = ["role:admin", "ops@acme.dev"]
action = "allow"
[[policy.rules]]
tools = ["db__*"]
principals = ["role:agent"]
action = "deny"
message = "agents may not touch the database"
"#,
    );
    let db = tool("db", "drop");
    assert_eq!(
        decide_as(&set, &db, json!({}), &admin()).effect,
        Effect::Allow
    );
    let ops = Principal::new("x", "acme").with_email("OPS@acme.dev");
    assert_eq!(decide_as(&set, &db, json!({}), &ops).effect, Effect::Allow);
    assert!(matches!(
        decide(&set, &db, json!({})).effect,
        Effect::Deny { .. }
    ));
}

#[test]
fn cel_reads_nested_arguments_lists_and_every_variable() {
    let set = compile(
        r#"
[[policy.rules]]
id = "nested"
tools = ["github__*"]
when = 'has(args.issue) && args.issue.labels.exists(l, l == "security") && args.issue.meta.priority >= 2 && args.repo.startsWith("acme/")'
action = "require_approval"
[[policy.rules]]
id = "who"
tools = ["github__*"]
when = 'user.email.endsWith("@acme.dev") && "agent" in user.roles && client.name == "claude-code" && tool.server == "github" && tool.exposed_name == "github__update_issue"'
action = "deny"
[[policy.rules]]
id = "time"
tools = ["github__*"]
when = 'now > timestamp("2026-01-01T00:00:00Z") && size(args) == 0'
action = "deny"
"#,
    );
    let update = tool("github", "update_issue");
    let nested = json!({"repo": "acme/api", "issue": {"labels": ["bug", "security"], "meta": {"priority": 3}}});
    assert_eq!(decide(&set, &update, nested).rule().unwrap().id, "nested");
    let plain = json!({"repo": "acme/api", "issue": {"labels": [], "meta": {"priority": 3}}});
    assert_eq!(decide(&set, &update, plain).rule().unwrap().id, "who");
    assert_eq!(
        decide(&set, &tool("github", "list"), json!({}))
            .rule()
            .unwrap()
            .id,
        "time"
    );
}

#[test]
fn cel_reads_mcp_annotations_with_spec_defaults() {
    let set = compile(
        r#"
[[policy.rules]]
tools = ["*"]
when = 'tool.annotations.destructiveHint && !("admin" in user.roles)'
action = "require_approval"
"#,
    );
    let read_only = tool("fs", "read").with_annotations(ToolAnnotations {
        read_only_hint: Some(true),
        ..ToolAnnotations::default()
    });
    let destructive = tool("fs", "rm").with_annotations(ToolAnnotations {
        destructive_hint: Some(true),
        ..ToolAnnotations::default()
    });
    let unannotated = tool("fs", "mystery");
    assert_eq!(decide(&set, &read_only, json!({})).effect, Effect::Allow);
    assert!(matches!(
        decide(&set, &destructive, json!({})).effect,
        Effect::RequireApproval { .. }
    ));
    // No annotations: MCP says assume destructive.
    assert!(matches!(
        decide(&set, &unannotated, json!({})).effect,
        Effect::RequireApproval { .. }
    ));
    assert_eq!(
        decide_as(&set, &destructive, json!({}), &admin()).effect,
        Effect::Allow
    );
}

#[test]
fn cel_runtime_errors_fail_closed() {
    let text = r#"
[policy]
default = "allow"
[[policy.rules]]
id = "needs-arg"
tools = ["*"]
when = 'args.amount > 100'
action = "allow"
"#;
    let set = compile(text);
    // A missing key is an error; the rule's action is allow, yet the call is denied.
    let decision = decide(&set, &tool("pay", "send"), json!({}));
    assert!(
        matches!(decision.effect, Effect::Deny { .. }),
        "{decision:?}"
    );
    assert!(matches!(decision.reason, Reason::RuleError { .. }));
    assert!(
        decision.explanation().contains("fail closed"),
        "{}",
        decision.explanation()
    );
    // A type mismatch too.
    let decision = decide(&set, &tool("pay", "send"), json!({"amount": "lots"}));
    assert!(matches!(decision.effect, Effect::Deny { .. }));
    // A non-boolean result too.
    let set = compile("[[policy.rules]]\ntools=[\"*\"]\nwhen='args.amount'\naction=\"allow\"\n");
    let decision = decide(&set, &tool("pay", "send"), json!({"amount": 5}));
    assert!(
        matches!(decision.reason, Reason::RuleError { ref error, .. } if error.contains("boolean"))
    );

    // on_error = require_approval holds the call instead, under the rule's approval policy.
    let set = compile(&text.replace(
        "default = \"allow\"",
        "default = \"allow\"\non_error = \"require_approval\"",
    ));
    let decision = decide(&set, &tool("pay", "send"), json!({}));
    assert_eq!(
        decision.effect,
        Effect::RequireApproval {
            approval_policy: None
        }
    );
    // has() guards a missing argument.
    let set = compile(
        "[[policy.rules]]\ntools=[\"*\"]\nwhen='has(args.amount) && args.amount > 100'\naction=\"deny\"\n",
    );
    assert_eq!(
        decide(&set, &tool("pay", "send"), json!({})).effect,
        Effect::Allow
    );
}

#[test]
fn shadow_rules_are_recorded_but_not_enforced() {
    let set = compile(
        r#"
[[policy.rules]]
id = "trial"
tools = ["db__*"]
mode = "shadow"
action = "deny"
message = "would block"
[[policy.rules]]
id = "broken-trial"
tools = ["db__*"]
mode = "shadow"
when = 'args.missing'
action = "deny"
[[policy.rules]]
id = "enforced"
tools = ["db__drop"]
action = "require_approval"
"#,
    );
    let query = decide(&set, &tool("db", "query"), json!({}));
    assert_eq!(query.effect, Effect::Allow);
    let shadow = query.shadow.as_ref().unwrap();
    assert_eq!(shadow.rule.as_ref().unwrap().id, "trial");
    assert!(
        query
            .explanation()
            .contains("in shadow mode rule `trial` would have denied it"),
        "{}",
        query.explanation()
    );
    let drop = decide(&set, &tool("db", "drop"), json!({}));
    assert!(matches!(drop.effect, Effect::RequireApproval { .. }));
    assert_eq!(drop.shadow.unwrap().rule.unwrap().id, "trial");
}

#[test]
fn a_shadowed_set_enforces_nothing_and_records_everything() {
    let set = compile(
        r#"
[policy]
mode = "shadow"
default = "deny"
[[policy.rules]]
tools = ["a__*"]
action = "require_approval"
"#,
    );
    let a = decide(&set, &tool("a", "x"), json!({}));
    assert_eq!(a.effect, Effect::Allow);
    assert_eq!(a.reason, Reason::ShadowSet);
    assert!(matches!(
        a.shadow.unwrap().effect,
        Effect::RequireApproval { .. }
    ));
    let b = decide(&set, &tool("b", "x"), json!({}));
    let shadow = b.shadow.unwrap();
    assert!(shadow.rule.is_none());
    assert!(matches!(shadow.effect, Effect::Deny { .. }));
    assert!(!set.denies_unconditionally(&tool("b", "x"), &agent()));
}

#[test]
fn disabled_rules_are_skipped() {
    let set = compile("[[policy.rules]]\ntools=[\"*\"]\naction=\"deny\"\nenabled=false\n");
    assert_eq!(
        decide(&set, &tool("a", "b"), json!({})).effect,
        Effect::Allow
    );
}

#[test]
fn unconditional_denials_are_detected_for_tool_hiding() {
    let set = compile(
        r#"
[[policy.rules]]
tools = ["secret__*"]
principals = ["role:agent"]
action = "deny"
[[policy.rules]]
tools = ["money__*"]
when = 'args.amount > 10'
action = "deny"
"#,
    );
    assert!(set.denies_unconditionally(&tool("secret", "read"), &agent()));
    assert!(!set.denies_unconditionally(&tool("secret", "read"), &admin()));
    assert!(!set.denies_unconditionally(&tool("money", "send"), &agent()));
    assert!(!set.denies_unconditionally(&tool("other", "x"), &agent()));
    let deny_all = compile("[policy]\ndefault=\"deny\"\n");
    assert!(deny_all.denies_unconditionally(&tool("other", "x"), &agent()));
}

#[test]
fn cel_syntax_errors_name_the_rule_and_the_position() {
    let error = compile_error(
        "[[policy.rules]]\nid = \"bad\"\ntools = [\"*\"]\nwhen = 'args.x == '\naction = \"deny\"\n",
    );
    assert!(error.contains("rule `bad` (rule #1)"), "{error}");
    assert!(error.contains("line 1, column"), "{error}");
}

#[test]
fn every_broken_rule_is_reported_at_once() {
    let error = compile_error(
        r#"
[[policy.rules]]
id = "a"
tools = ["fs__[oops"]
action = "deny"
[[policy.rules]]
id = "a"
tools = ["*"]
principals = ["team:x"]
action = "deny"
[[policy.rules]]
tools = []
when = 'request.size > 3'
action = "allow"
[[policy.rules]]
tools = ["*"]
action = "require_approval"
approval_policy = "nobody"
"#,
    );
    for expected in [
        "rule `a` (rule #1): pattern `fs__[oops` is invalid",
        "rule `a` (rule #2): the id is used by an earlier rule too",
        "invalid principal selector `team:x`",
        "rule `rule-3` (rule #3): `tools` is empty",
        "unknown variable `request`",
    ] {
        assert!(
            error.contains(expected),
            "missing {expected:?} in:\n{error}"
        );
    }
    // Undefined approval policies are reported once the rules compile.
    let error = compile_error(
        "[[policy.rules]]\ntools=[\"*\"]\naction=\"require_approval\"\napproval_policy=\"nobody\"\n",
    );
    assert!(
        error.contains("approval policy `nobody` is not defined"),
        "{error}"
    );
}

#[test]
fn comprehension_variables_are_not_unknown() {
    compile(
        "[[policy.rules]]\ntools=[\"*\"]\nwhen='args.items.all(item, item.qty < 5) && args.items.map(i, i.qty).exists(q, q == 0)'\naction=\"deny\"\n",
    );
}

#[test]
fn hostile_expressions_hit_limits_instead_of_the_stack() {
    let deep = format!("{}true{}", "(".repeat(500), ")".repeat(500));
    let error = compile_error(&format!(
        "[[policy.rules]]\ntools=[\"*\"]\nwhen='{deep}'\naction=\"deny\"\n"
    ));
    assert!(error.contains("nests 25 levels deep"), "{error}");
    let negations = format!("{}true", "!".repeat(2000));
    let error = compile_error(&format!(
        "[[policy.rules]]\ntools=[\"*\"]\nwhen='{negations}'\naction=\"deny\"\n"
    ));
    assert!(error.contains("levels deep"), "{error}");
    let long = vec!["args.a == 1"; 1000].join(" || ");
    let error = compile_error(&format!(
        "[[policy.rules]]\ntools=[\"*\"]\nwhen='{long}'\naction=\"deny\"\n"
    ));
    assert!(error.contains("the limit is 4096"), "{error}");
    // Brackets inside strings do not count.
    compile(&format!(
        "[[policy.rules]]\ntools=[\"*\"]\nwhen='args.s == \"{}\"'\naction=\"deny\"\n",
        "(".repeat(100)
    ));
}

#[test]
fn long_flat_expressions_within_the_limit_compile_and_evaluate() {
    let chain = vec!["args.a == 1"; 120].join(" || ");
    assert!(chain.len() < 4096);
    let set = compile(&format!(
        "[[policy.rules]]\ntools=[\"*\"]\nwhen='{chain}'\naction=\"deny\"\n"
    ));
    assert!(matches!(
        decide(&set, &tool("a", "b"), json!({"a": 1})).effect,
        Effect::Deny { .. }
    ));
}

fn rule_when(condition: &str) -> String {
    format!("[[policy.rules]]\ntools=[\"*\"]\nwhen='{condition}'\naction=\"allow\"\n")
}

/// `prefix` then `unit` repeated as long as the length limit allows, then `1 == 1`.
fn longest(prefix: &str, unit: &str) -> String {
    let mut source = prefix.to_owned();
    while source.len() + unit.len() + 8 < 4096 {
        source.push_str(unit);
    }
    source.push_str("1 == 1");
    source
}

#[test]
fn expressions_too_deep_to_evaluate_are_refused_when_they_compile() {
    // The review's crash: a chain of 2,000 additions fit the length limit, compiled, and
    // overflowed a worker's stack when evaluated.
    let chain = format!("{} == 0", vec!["1"; 2000].join("+"));
    let error = compile_error(&rule_when(&chain));
    assert!(error.contains("operations deep"), "{error}");
    assert!(error.contains("the limit is 64"), "{error}");
    // Every shape the parser recurses on, at the longest the length limit allows. The parser
    // runs on the compiler's own thread, so none can overflow this one; each is refused as too
    // deep or as a syntax error, except `&&` and `||` chains, which the parser balances.
    let too_deep = [
        ("", "1+"),
        ("", "1<"),
        ("", "2*"),
        ("", "1 in "),
        ("", "-1-"),
        ("args", "[0]"),
        ("args", ".f()"),
        ("", "args.a ? 1 : "),
    ];
    for (prefix, unit) in too_deep {
        let error = compile_error(&rule_when(&longest(prefix, unit)));
        assert!(
            error.contains("operations deep") || error.contains("syntax"),
            "{unit}: {error}"
        );
    }
    for unit in ["args.a && ", "args.a || "] {
        compile(&rule_when(&longest("", unit)));
    }
}

#[test]
fn the_deepest_accepted_expression_evaluates_on_a_small_stack() {
    // 64 levels: the limit. Metering wraps operands, so evaluation is about twice as deep.
    let chain = format!("{} > 0", vec!["args.n"; 61].join(" + "));
    let set = compile(&rule_when(&chain));
    let decision = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || decide(&set, &tool("a", "b"), json!({"n": 1})))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(decision.effect, Effect::Allow, "{decision:?}");
}

#[test]
fn comprehensions_nested_too_deep_are_refused_when_they_compile() {
    // The review's stall: three nested `all()` over 200 items took 3 s per call.
    let three = "args.l.all(x, args.l.all(y, args.l.all(z, x + y + z >= 0)))";
    let error = compile_error(&rule_when(three));
    assert!(error.contains("may cost about"), "{error}");
    assert!(error.contains("nest fewer comprehensions"), "{error}");
    // Two deep are fine at the sizes rules usually see.
    let set = compile(&rule_when("args.l.all(x, args.l.all(y, x + y >= 0))"));
    let items: Vec<i64> = (0..50).collect();
    let decision = decide(&set, &tool("a", "b"), json!({"l": items}));
    assert_eq!(decision.effect, Effect::Allow, "{decision:?}");
}

fn assert_exhausted(decision: &Decision) {
    assert!(
        matches!(decision.effect, Effect::Deny { .. }),
        "the budget fails closed: {decision:?}"
    );
    assert!(
        matches!(&decision.reason, Reason::RuleError { error, .. } if error.contains("budget exhausted")),
        "{decision:?}"
    );
}

#[test]
fn work_past_the_evaluation_budget_fails_closed() {
    // Two nested comprehensions over a long list: accepted, but 4,000,000 iterations is more
    // than one call may spend.
    let set = compile(&rule_when("args.l.all(x, args.l.all(y, x + y >= 0))"));
    let items: Vec<i64> = (0..2000).collect();
    assert_exhausted(&decide(&set, &tool("a", "b"), json!({"l": items})));

    // Sixty concatenations of a megabyte string (each copies everything before it).
    let concat = format!("size({}) > 0", vec!["args.s"; 60].join(" + "));
    let set = compile(&rule_when(&concat));
    let big = "x".repeat(1 << 20);
    assert_exhausted(&decide(&set, &tool("a", "b"), json!({"s": big})));

    // Scans the native fast path answers: membership over a long list, many times.
    let scans = vec!["-1 in args.l"; 100].join(" || ");
    let set = compile(&rule_when(&scans));
    let items: Vec<i64> = (0..200_000).collect();
    assert_exhausted(&decide(&set, &tool("a", "b"), json!({"l": items})));
    // ... and string tests over a long string.
    let tests = vec!["args.s.contains(\"y\")"; 150].join(" || ");
    let set = compile(&rule_when(&tests));
    assert_exhausted(&decide(
        &set,
        &tool("a", "b"),
        json!({"s": "x".repeat(1 << 20)}),
    ));

    // Comparisons against a list literal of the same big value.
    let literal = format!("args.s in [{}]", vec!["args.s + \"\""; 100].join(", "));
    let set = compile(&rule_when(&literal));
    assert_exhausted(&decide(
        &set,
        &tool("a", "b"),
        json!({"s": "x".repeat(1 << 20)}),
    ));

    // The budget is per call: the next call starts afresh.
    let set = compile(&rule_when("args.l.all(x, x >= 0)"));
    for _ in 0..3 {
        let decision = decide(&set, &tool("a", "b"), json!({"l": [1, 2, 3]}));
        assert_eq!(decision.effect, Effect::Allow);
    }
}

#[test]
fn regular_expressions_are_literal_small_and_paid_for_by_their_text() {
    // A pattern from the arguments would be compiled, at any size, on every call.
    let error = compile_error(&rule_when("args.s.matches(args.p)"));
    assert!(error.contains("must be a string literal"), "{error}");
    let long = format!("args.s.matches(\"{}\")", "a".repeat(2000));
    assert!(compile_error(&rule_when(&long)).contains("the limit is 1024"));
    let huge = "args.s.matches(\"(a{100}){100}\")";
    assert!(compile_error(&rule_when(huge)).contains("does not compile"));
    // A literal pattern works, and a long text is charged by its size times the pattern's.
    let set = compile(&rule_when(
        "matches(args.s, \"^[a-z]+$\") && args.s.matches(\"b\")",
    ));
    assert_eq!(
        decide(&set, &tool("a", "b"), json!({"s": "abc"})).effect,
        Effect::Allow
    );
    let set = compile(&rule_when(&format!(
        "args.s.matches(\"{}\")",
        "(x|y)*z".repeat(40)
    )));
    assert_exhausted(&decide(
        &set,
        &tool("a", "b"),
        json!({"s": "x".repeat(4 << 20)}),
    ));
}

#[test]
fn costly_conditions_are_known_before_they_run() {
    let set = compile(
        r#"
[[policy.rules]]
tools = ["slow"]
when = 'args.l.exists(x, x == "a")'
action = "deny"
[[policy.rules]]
tools = ["fast"]
when = 'args.n > 1 && "admin" in user.roles'
action = "deny"
"#,
    );
    assert!(set.is_costly(&tool("s", "slow")));
    assert!(!set.is_costly(&tool("s", "fast")));
    assert!(!set.is_costly(&tool("s", "other")));
}

#[test]
fn too_many_rules_is_an_error() {
    let document = PolicyDocument {
        rules: vec![RuleSpec::new(ActionKind::Allow, ["*"]); 3],
        ..PolicyDocument::default()
    };
    let limits = PolicyLimits {
        max_rules: 2,
        ..PolicyLimits::default()
    };
    let error = PolicySet::compile_with_limits(&document, &limits).unwrap_err();
    assert_eq!(error, PolicyError::TooManyRules { count: 3, limit: 2 });
}

#[test]
fn governance_picks_the_default_approval_policy() {
    let document = GovernanceDocument::parse(
        "[[approval_policies]]\nname = \"ops\"\n[[approval_policies]]\nname = \"sec\"\ndefault = true\n",
        Format::Toml,
    )
    .unwrap();
    let governance = Governance::compile(&document).unwrap();
    assert_eq!(governance.approval_policy(None).unwrap().name, "sec");
    assert_eq!(governance.approval_policy(Some("ops")).unwrap().name, "ops");
    let empty = Governance::compile(&GovernanceDocument::default()).unwrap();
    assert_eq!(empty.approval_policy(None).unwrap().name, "default");
    let two_defaults = "[[approval_policies]]\nname=\"a\"\ndefault=true\n[[approval_policies]]\nname=\"b\"\ndefault=true\n";
    assert!(compile_error(two_defaults).contains("`a`, `b`"));
    let twice = "[[approval_policies]]\nname=\"a\"\n[[approval_policies]]\nname=\"a\"\n";
    assert!(compile_error(twice).contains("defined twice"));
}

proptest! {
    /// The indexed evaluation decides exactly as a naive scan of every rule in order would.
    #[test]
    fn the_index_never_changes_a_decision(
        patterns in proptest::collection::vec(
            prop_oneof![Just("*"), Just("a__*"), Just("b__*"), Just("*__x"), Just("a__x"), Just("x"), Just("?__y"), Just("{a,b}__z")],
            1..12,
        ),
        servers in proptest::collection::vec(prop_oneof![Just(None), Just(Some("a")), Just(Some("b*"))], 12),
        thresholds in proptest::collection::vec(proptest::option::of(0..10i64), 12),
        server in prop_oneof![Just("a"), Just("b"), Just("c")],
        name in prop_oneof![Just("x"), Just("y"), Just("z")],
        n in 0..10i64,
    ) {
        let rules: Vec<RuleSpec> = patterns.iter().enumerate().map(|(i, pattern)| {
            let mut rule = RuleSpec::new(
                [ActionKind::Allow, ActionKind::Deny, ActionKind::RequireApproval][i % 3],
                [*pattern],
            ).id(format!("r{i}"));
            if let Some(server) = servers[i] { rule.servers = vec![server.to_owned()]; }
            if let Some(t) = thresholds[i] { rule = rule.when(format!("args.n > {t}")); }
            rule
        }).collect();
        let document = PolicyDocument { default: ActionKind::Deny, rules: rules.clone(), ..PolicyDocument::default() };
        let set = PolicySet::compile(&document).unwrap();
        let descriptor = tool(server, name);
        let decision = decide(&set, &descriptor, json!({"n": n}));
        // The naive model.
        let glob = |p: &str, s: &str| globset::GlobBuilder::new(p).literal_separator(false).build().unwrap().compile_matcher().is_match(s);
        let expected = rules.iter().enumerate().find(|(i, rule)| {
            let pattern = &rule.tools.as_ref().unwrap()[0];
            let tool_ok = glob(pattern, &descriptor.exposed_name) || glob(pattern, &descriptor.name);
            let server_ok = servers[*i].is_none_or(|s| glob(s, server));
            let when_ok = thresholds[*i].is_none_or(|t| n > t);
            tool_ok && server_ok && when_ok
        }).map(|(i, _)| format!("r{i}"));
        prop_assert_eq!(decision.rule().map(|r| r.id.clone()), expected);
    }
}

//! Decision time of the policy engine for sets of 10, 100 and 1,000 rules, beside a naive
//! baseline in the same run: every rule tested in order, the CEL activation built from
//! `serde_json` values for every call.
//!
//! ```text
//! cargo bench --bench policy_eval
//! ```
//!
//! Rules are generated deterministically to look like real policies: mostly exact tool names,
//! some per-server prefixes (`github__*`), some cross-server globs (`*__delete_*`), a few
//! principal-restricted rules, and CEL conditions on arguments, annotations and roles on about
//! half of them. Two calls are measured per size, named by their tool; the bench prints how many
//! candidate rules each call has and which rule decides it.

#![expect(
    clippy::expect_used,
    reason = "benchmark setup fails loudly on purpose"
)]

use cel::{Context, Program};
use chrono::Utc;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use preloop_core::policy::{ActionKind, EvaluationInput, PolicyDocument, PolicySet, RuleSpec};
use preloop_core::registry::{ToolAnnotations, ToolDescriptor, ToolSource};
use preloop_core::{ClientInfo, Principal};
use serde_json::{Value, json};
use std::hint::black_box;
use std::time::Duration;

const SERVERS: [&str; 25] = [
    "github",
    "gitlab",
    "jira",
    "slack",
    "fs",
    "db",
    "k8s",
    "aws",
    "stripe",
    "docs",
    "linear",
    "notion",
    "gcal",
    "gmail",
    "drive",
    "sentry",
    "pagerduty",
    "datadog",
    "vault",
    "terraform",
    "docker",
    "npm",
    "pypi",
    "figma",
    "zendesk",
];
const VERBS: [&str; 8] = [
    "get", "list", "create", "update", "delete", "search", "run", "deploy",
];
const OBJECTS: [&str; 6] = ["issue", "file", "pod", "user", "payment", "page"];
const CONDITIONS: [&str; 5] = [
    r#"args.priority == "High""#,
    r#"has(args.amount) && args.amount > 1000"#,
    r#"tool.annotations.destructiveHint && !("admin" in user.roles)"#,
    r#"has(args.labels) && args.labels.exists(l, l == "security")"#,
    r#"user.email.endsWith("@contractor.example") || client.name == "unknown""#,
];

fn rules(count: usize) -> Vec<RuleSpec> {
    let mut rules = vec![
        RuleSpec::new(ActionKind::Deny, ["*"]).principals(["role:suspended"]),
        RuleSpec::new(ActionKind::Deny, ["*__drop_*"]),
    ];
    for i in 0..count.saturating_sub(rules.len()) {
        let server = SERVERS[(i * 7) % SERVERS.len()];
        let verb = VERBS[(i / 3) % VERBS.len()];
        let object = OBJECTS[(i / 5) % OBJECTS.len()];
        let action = [
            ActionKind::Allow,
            ActionKind::Deny,
            ActionKind::RequireApproval,
        ][i % 3];
        let rule = match i % 10 {
            0..=5 => RuleSpec::new(action, [format!("{server}__{verb}_{object}")]),
            6 | 7 => RuleSpec::new(action, [format!("{server}__*")]),
            8 => RuleSpec::new(action, [format!("*__{verb}_*")]),
            _ => RuleSpec::new(action, [format!("{server}__{verb}_*")]).principals(["role:intern"]),
        };
        rules.push(if i % 2 == 0 {
            rule.when(CONDITIONS[(i / 2) % CONDITIONS.len()])
        } else {
            rule
        });
    }
    rules.truncate(count);
    rules
}

struct Call {
    label: &'static str,
    tool: ToolDescriptor,
    args: Value,
}

fn calls() -> Vec<Call> {
    let annotated = |server: &str, name: &str| {
        ToolDescriptor::new(server, name, ToolSource::Upstream).with_annotations(ToolAnnotations {
            destructive_hint: Some(false),
            read_only_hint: Some(false),
            ..ToolAnnotations::default()
        })
    };
    vec![
        Call {
            label: "github__create_issue",
            tool: annotated("github", "create_issue"),
            args: json!({"repo": "acme/api", "title": "Crash on start", "priority": "High", "labels": ["bug"]}),
        },
        Call {
            label: "fs__read_file",
            tool: annotated("fs", "read_file"),
            args: json!({"path": "/srv/app/config.yaml", "priority": "Low"}),
        },
    ]
}

/// The naive engine: every rule in order, globs tested one by one, the activation converted
/// from JSON per call.
struct Naive {
    root: Context<'static, 'static>,
    rules: Vec<NaiveRule>,
}

/// Tool globs, required roles, condition, action.
type NaiveRule = (
    Vec<globset::GlobMatcher>,
    Vec<String>,
    Option<Program>,
    ActionKind,
);

impl Naive {
    fn new(rules: &[RuleSpec]) -> Self {
        let compiled = rules
            .iter()
            .map(|rule| {
                let globs = rule
                    .tools
                    .iter()
                    .flatten()
                    .map(|p| globset::Glob::new(p).expect("glob").compile_matcher())
                    .collect();
                let program = rule
                    .when
                    .as_deref()
                    .map(|w| Program::compile(w).expect("cel"));
                let roles = rule
                    .principals
                    .iter()
                    .map(|p| p.trim_start_matches("role:").to_owned())
                    .collect();
                (globs, roles, program, rule.action)
            })
            .collect();
        Self {
            root: Context::default(),
            rules: compiled,
        }
    }

    fn evaluate(&self, call: &Call, principal: &Principal) -> ActionKind {
        let mut scope = self.root.new_inner_scope();
        let tool = json!({
            "name": call.tool.name, "server": call.tool.server, "exposed_name": call.tool.exposed_name,
            "annotations": {"destructiveHint": call.tool.annotations.destructive_hint.unwrap_or(true),
                            "readOnlyHint": call.tool.annotations.read_only_hint.unwrap_or(false)},
        });
        let user = json!({"id": principal.id, "email": principal.email, "roles": principal.roles});
        let client = json!({"name": "claude-code"});
        for (name, value) in [
            ("tool", &tool),
            ("args", &call.args),
            ("user", &user),
            ("client", &client),
        ] {
            scope
                .add_variable(name, cel::to_value(value).expect("json to cel"))
                .expect("variable");
        }
        for (globs, roles, program, action) in &self.rules {
            if !globs.iter().any(|g| g.is_match(&call.tool.exposed_name)) {
                continue;
            }
            if !roles.is_empty() && !roles.iter().any(|r| principal.roles.contains(r)) {
                continue;
            }
            match program.as_ref().map(|p| p.execute(&scope)) {
                None | Some(Ok(cel::Value::Bool(true))) => return *action,
                Some(Ok(_)) => {}
                Some(Err(_)) => return ActionKind::Deny,
            }
        }
        ActionKind::Allow
    }
}

fn bench(c: &mut Criterion) {
    let principal = Principal::new("agent-1", "acme")
        .with_email("bot@acme.example")
        .with_role("agent");
    let client = ClientInfo::named("claude-code");
    let mut group = c.benchmark_group("policy_eval");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    for size in [10usize, 100, 1000] {
        let rules = rules(size);
        let document = PolicyDocument {
            rules: rules.clone(),
            ..PolicyDocument::default()
        };
        let set = PolicySet::compile(&document).expect("the generated policy compiles");
        let naive = Naive::new(&rules);
        for call in calls() {
            let input = EvaluationInput {
                tool: &call.tool,
                args: &call.args,
                principal: &principal,
                client: &client,
                now: Utc::now(),
            };
            let decision = set.evaluate(&input);
            assert_eq!(
                decision.effect.kind(),
                naive.evaluate(&call, &principal),
                "engines disagree"
            );
            println!(
                "{size} rules, {}: {} candidate rule(s); {}",
                call.label,
                decision.candidates,
                decision.explanation()
            );
            group.bench_with_input(
                BenchmarkId::new(format!("indexed/{}", call.label), size),
                &input,
                |b, input| b.iter(|| black_box(set.evaluate(black_box(input)))),
            );
            group.bench_with_input(
                BenchmarkId::new(format!("naive/{}", call.label), size),
                &call,
                |b, call| b.iter(|| black_box(naive.evaluate(black_box(call), &principal))),
            );
        }
    }
    group.finish();
}

/// Conditions a hostile tenant might write, on inputs that make them as slow as they can be:
/// each runs until the evaluation budget stops it (the bench prints the decision). The time is
/// what one such call costs the server at most.
fn hostile(c: &mut Criterion) {
    let principal = Principal::new("agent-1", "acme").with_role("agent");
    let client = ClientInfo::named("claude-code");
    let tool = ToolDescriptor::new("s", "t", ToolSource::Upstream);
    let list: Vec<i64> = (0..2000).collect();
    let big = "x".repeat(1 << 20);
    let cases = [
        (
            "nested-comprehensions",
            "args.l.all(x, args.l.all(y, x + y >= 0))".to_owned(),
            json!({"l": list}),
        ),
        (
            "concatenation",
            format!("size({}) > 0", vec!["args.s"; 60].join(" + ")),
            json!({"s": big}),
        ),
        (
            "membership-scans",
            vec!["-1 in args.l"; 100].join(" || "),
            json!({"l": (0..200_000).collect::<Vec<i64>>()}),
        ),
        (
            "string-scans",
            vec!["args.s.contains(\"y\")"; 150].join(" || "),
            json!({"s": big}),
        ),
    ];
    let mut group = c.benchmark_group("policy_budget");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    for (label, condition, args) in cases {
        let mut rule = RuleSpec::new(ActionKind::Allow, ["*"]);
        rule.when = Some(condition);
        let document = PolicyDocument {
            rules: vec![rule],
            ..PolicyDocument::default()
        };
        let set = PolicySet::compile(&document).expect("the hostile policy compiles");
        let input = EvaluationInput {
            tool: &tool,
            args: &args,
            principal: &principal,
            client: &client,
            now: Utc::now(),
        };
        println!("{label}: {}", set.evaluate(&input).explanation());
        group.bench_with_input(BenchmarkId::new("exhausted", label), &input, |b, input| {
            b.iter(|| black_box(set.evaluate(black_box(input))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench, hostile);
criterion_main!(benches);

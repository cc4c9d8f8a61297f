//! The fast path answers like the interpreter, and takes the common conditions.

use super::condition::{Activation, Condition, EvaluationInput, PolicyLimits};
use crate::principal::{ClientInfo, Principal};
use crate::registry::{ToolAnnotations, ToolDescriptor, ToolSource};
use cel::Env;
use chrono::Utc;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};

fn args() -> Value {
    json!({
        "s": "Asia/Tokyo", "e": "", "i": 7, "neg": -3, "big": 18446744073709551615u64, "f": 2.5,
        "t": true, "n": null, "l": ["a", "b", 3], "ls": ["x", "y"], "li": [1, 2],
        "m": {"k": "v", "i": 1, "deep": {"x": 1}}, "u": "é✓"
    })
}

fn check(source: &str, env: &Arc<Env>) -> Option<bool> {
    let Ok(condition) = Condition::compile(source, env, &PolicyLimits::default()) else {
        return None;
    };
    let tool = ToolDescriptor::new("github", "create_issue", ToolSource::Upstream)
        .with_annotations(ToolAnnotations {
            read_only_hint: Some(false),
            ..ToolAnnotations::default()
        });
    let principal = Principal::new("u1", "acme")
        .with_email("a@acme.dev")
        .with_role("agent");
    let client = ClientInfo::named("claude-code");
    let args = args();
    let input = EvaluationInput {
        tool: &tool,
        args: &args,
        principal: &principal,
        client: &client,
        now: Utc::now(),
    };
    let cell = OnceLock::new();
    let activation = Activation::new(&input, &cell);
    let fast = condition.evaluate(env, &activation);
    let slow = condition.interpret(env, &activation);
    match (&fast, &slow) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "`{source}`: fast {a}, interpreter {b}"),
        (Err(_), Err(_)) => {}
        _ => panic!("`{source}`: fast {fast:?}, interpreter {slow:?}"),
    }
    fast.ok()
}

fn operand() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("args.s"),
        Just("args.e"),
        Just("args.i"),
        Just("args.neg"),
        Just("args.big"),
        Just("args.f"),
        Just("args.t"),
        Just("args.n"),
        Just("args.l"),
        Just("args.ls"),
        Just("args.li"),
        Just("args.m"),
        Just("args.m.k"),
        Just("args.m.i"),
        Just("args.m.deep.x"),
        Just("args.missing"),
        Just("args.s.x"),
        Just("args.u"),
        Just("tool.name"),
        Just("tool.server"),
        Just("tool.exposed_name"),
        Just("tool.annotations.destructiveHint"),
        Just("tool.annotations.readOnlyHint"),
        Just("tool.annotations.openWorldHint"),
        Just("user.id"),
        Just("user.email"),
        Just("user.roles"),
        Just("user.api_key"),
        Just("client.name"),
        Just("client.version"),
        Just("\"Asia/Tokyo\""),
        Just("\"\""),
        Just("\"k\""),
        Just("\"agent\""),
        Just("7"),
        Just("7u"),
        Just("2.5"),
        Just("-3"),
        Just("true"),
        Just("false"),
        Just("null"),
        Just("3"),
        Just("\"a\""),
    ]
    .prop_map(str::to_owned)
}

fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (
            operand(),
            prop_oneof![
                Just("=="),
                Just("!="),
                Just("<"),
                Just("<="),
                Just(">"),
                Just(">=")
            ],
            operand()
        )
            .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        (operand(), operand()).prop_map(|(a, b)| format!("{a} in {b}")),
        (
            operand(),
            prop_oneof![Just("startsWith"), Just("endsWith"), Just("contains")],
            operand()
        )
            .prop_map(|(a, f, b)| format!("{a}.{f}({b})")),
        (operand(), 0..4i64).prop_map(|(a, n)| format!("size({a}) > {n}")),
        operand().prop_map(|a| format!("{a}.size() == 2")),
        prop_oneof![
            Just("has(args.s)"),
            Just("has(args.missing)"),
            Just("has(args.m.k)"),
            Just("has(args.m.nope)"),
            Just("has(args.s.x)")
        ]
        .prop_map(str::to_owned),
        operand(),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) && ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) || ({b})")),
            inner.prop_map(|a| format!("!({a})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whenever the fast path answers, the interpreter gives the same answer; when the
    /// interpreter fails, so does the condition (the fast path deferred).
    #[test]
    fn the_fast_path_agrees_with_the_interpreter(source in expression()) {
        let env = Arc::new(super::cost::environment());
        check(&source, &env);
    }
}

#[test]
fn common_conditions_take_the_fast_path() {
    let env = super::cost::environment();
    for source in [
        r#"args.target_timezone == "Asia/Tokyo""#,
        r#"has(args.amount) && args.amount > 1000"#,
        r#"tool.annotations.destructiveHint && !("admin" in user.roles)"#,
        r#"user.email.endsWith("@contractor.example") || client.name == "unknown""#,
        r#"size(args.items) > 10 && args.repo.startsWith("acme/")"#,
        r#""security" in args.labels"#,
    ] {
        let condition = Condition::compile(source, &env, &PolicyLimits::default()).unwrap();
        assert!(condition.has_fast_path(), "{source}");
    }
    for source in [
        r#"args.items.exists(i, i > 1)"#,
        r#"now > timestamp("2026-01-01T00:00:00Z")"#,
        "args.a + 1 > 2",
    ] {
        let condition = Condition::compile(source, &env, &PolicyLimits::default()).unwrap();
        assert!(!condition.has_fast_path(), "{source}");
    }
}

#[test]
fn the_fast_path_answers_common_cases_and_defers_anomalies() {
    let env = Arc::new(super::cost::environment());
    assert_eq!(
        check(r#"args.s == "Asia/Tokyo" && args.i > 5"#, &env),
        Some(true)
    );
    assert_eq!(
        check(
            r#""agent" in user.roles && tool.annotations.destructiveHint"#,
            &env
        ),
        Some(true)
    );
    assert_eq!(
        check(r#"args.m.k == "v" || args.missing"#, &env),
        Some(true)
    );
    assert_eq!(check("size(args.u) == 2", &env), Some(true));
    // A missing field is the interpreter's error, and stays one.
    assert_eq!(check("args.missing == 1", &env), None);
}

//! CEL conditions: compiled once with limits, evaluated against a lazily built, zero-copy
//! activation.
//!
//! The activation is a [`cel::context::VariableResolver`]: a variable is converted only when an
//! expression reads it, at most once per evaluation, and strings are borrowed from the call's
//! arguments rather than copied. The `tool` value depends only on the tool, so the policy index
//! builds it once per tool and every later evaluation borrows it.

use super::cost;
use super::fast::FastExpr;
use crate::principal::{ClientInfo, Principal};
use crate::registry::ToolDescriptor;
use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelTimestamp,
    CelUInt,
};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, Value as CelValue};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

/// The variables a condition may read.
pub const VARIABLES: [&str; 5] = ["tool", "args", "user", "client", "now"];

/// Bounds that keep a hostile or careless policy from stalling compilation or evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyLimits {
    /// Longest accepted CEL expression, in bytes.
    pub max_expression_length: usize,
    /// Deepest accepted nesting of parentheses, brackets and braces.
    pub max_nesting_depth: usize,
    /// Deepest accepted parsed expression: operator chains, field paths and calls each add a
    /// level (`1 + 1 + 1` is three deep).
    pub max_expression_depth: usize,
    /// Highest accepted static cost estimate of one condition (see [`crate::policy::ASSUMED_ITEMS`]);
    /// by default the evaluation budget: a condition that would exhaust it at the sizes the
    /// estimate assumes is refused when it is saved.
    pub max_estimated_cost: u64,
    /// What evaluating a call's conditions may spend, all rules together; past it the
    /// evaluation fails, and failures fail closed.
    pub evaluation_budget: u64,
    /// Most rules in one policy set.
    pub max_rules: usize,
}

impl Default for PolicyLimits {
    fn default() -> Self {
        Self {
            max_expression_length: 4096,
            max_nesting_depth: 24,
            max_expression_depth: 64,
            max_estimated_cost: 10_000_000,
            evaluation_budget: 10_000_000,
            max_rules: 10_000,
        }
    }
}

/// Why a condition does not compile.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConditionError {
    /// The CEL text does not parse.
    #[error("CEL syntax error at line {line}, column {column} of the condition: {message}")]
    Syntax {
        /// 1-based line within the expression.
        line: usize,
        /// 1-based column within the expression.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The expression is longer than the limit.
    #[error("CEL condition is {length} bytes long; the limit is {limit}")]
    TooLong {
        /// Its length.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// The expression nests deeper than the limit.
    #[error("CEL condition nests {depth} levels deep at column {column}; the limit is {limit}")]
    TooDeep {
        /// The depth reached.
        depth: usize,
        /// Where the limit was passed (1-based).
        column: usize,
        /// The limit.
        limit: usize,
    },
    /// The parsed expression is deeper than the limit.
    #[error(
        "CEL condition is {depth} operations deep at column {column} (chained operators, fields and calls each add one); the limit is {limit}"
    )]
    ExpressionTooDeep {
        /// How deep it is, or at least.
        depth: usize,
        /// Where the limit was passed (1-based; 0 when unknown).
        column: usize,
        /// The limit.
        limit: usize,
    },
    /// The expression may cost more than a rule may spend.
    #[error(
        "CEL condition may cost about {estimate} units per call (comprehensions over collections of {assumed} items); the limit is {limit}: nest fewer comprehensions",
        assumed = super::cost::ASSUMED_ITEMS
    )]
    TooCostly {
        /// The static estimate.
        estimate: u64,
        /// The limit.
        limit: u64,
    },
    /// A `matches()` pattern is not a small string literal.
    #[error("CEL condition: {source}")]
    Pattern {
        /// What is wrong with it.
        #[source]
        source: super::cost::MatchesError,
    },
    /// The expression reads a variable that does not exist.
    #[error(
        "CEL condition reads unknown variable `{name}`; conditions may read tool, args, user, client and now"
    )]
    UnknownVariable {
        /// The variable.
        name: String,
    },
}

/// Why a compiled condition could not be evaluated for a call (the rule then fails closed).
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum EvaluationError {
    /// The condition's value is not a boolean.
    #[error("condition evaluated to {found} instead of a boolean")]
    NotBoolean {
        /// The type it evaluated to.
        found: cel::objects::ValueType,
    },
    /// The evaluation budget ran out (the metering functions' own message).
    #[error("{message}")]
    Budget {
        /// What the metering function reported.
        message: String,
    },
    /// The interpreter failed (a missing field, a type mismatch, ...).
    #[error(transparent)]
    Interpreter {
        /// The interpreter's error.
        #[from]
        source: cel::ExecutionError,
    },
}

/// A compiled CEL condition.
#[derive(Debug)]
pub(crate) struct Condition {
    source: Arc<str>,
    /// The expression with its metering calls (see [`super::cost::meter`]).
    metered: IdedExpr,
    fast: Option<FastExpr>,
    estimate: u64,
}

impl Condition {
    /// Compiles `source` for `env`, enforcing `limits` before the parser sees it.
    pub(crate) fn compile(
        source: &str,
        env: &Env,
        limits: &PolicyLimits,
    ) -> Result<Self, ConditionError> {
        if source.len() > limits.max_expression_length {
            return Err(ConditionError::TooLong {
                length: source.len(),
                limit: limits.max_expression_length,
            });
        }
        check_nesting(source, limits.max_nesting_depth)?;
        let (expression, source_info) =
            env.parser()
                .parse_with_source_info(source)
                .map_err(|errors| {
                    let first = errors.errors.first();
                    let (line, column) = first.map_or((0, 0), |e| {
                        (
                            usize::try_from(e.pos.0).unwrap_or(0),
                            usize::try_from(e.pos.1).unwrap_or(0) + 1,
                        )
                    });
                    ConditionError::Syntax {
                        line,
                        column,
                        message: first.map_or_else(|| errors.to_string(), |e| e.msg.clone()),
                    }
                })?;
        // Before anything walks the tree recursively.
        cost::check_depth(&expression, limits.max_expression_depth).map_err(|node| {
            let column = source_info
                .offset_for(node)
                .and_then(|(start, _)| usize::try_from(start).ok())
                .map_or(0, |start| {
                    source[..start.min(source.len())].chars().count() + 1
                });
            ConditionError::ExpressionTooDeep {
                depth: limits.max_expression_depth + 1,
                column,
                limit: limits.max_expression_depth,
            }
        })?;
        let mut bound = HashSet::new();
        comprehension_variables(&expression, &mut bound);
        let references = expression.references();
        let mut unknown: Vec<&str> = references
            .variables()
            .into_iter()
            .filter(|name| !VARIABLES.contains(name) && !bound.contains(*name))
            .collect();
        unknown.sort_unstable();
        if let Some(name) = unknown.first() {
            return Err(ConditionError::UnknownVariable {
                name: (*name).to_owned(),
            });
        }
        cost::check_patterns(&expression).map_err(|source| ConditionError::Pattern { source })?;
        let estimate = cost::estimate(&expression);
        if estimate > limits.max_estimated_cost {
            return Err(ConditionError::TooCostly {
                estimate,
                limit: limits.max_estimated_cost,
            });
        }
        let fast = FastExpr::compile(&expression);
        let mut metered = expression;
        cost::meter(&mut metered);
        Ok(Self {
            source: source.into(),
            metered,
            fast,
            estimate,
        })
    }

    /// The static cost estimate.
    pub(crate) fn estimate(&self) -> u64 {
        self.estimate
    }

    /// The expression as written.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates to a boolean; anything else (an error, a non-boolean) is an error.
    pub(crate) fn evaluate(
        &self,
        env: &Arc<Env>,
        activation: &Activation<'_>,
    ) -> Result<bool, EvaluationError> {
        match self
            .fast
            .as_ref()
            .and_then(|fast| fast.evaluate(activation.input))
        {
            Some(answer) => Ok(answer),
            None => self.interpret(env, activation),
        }
    }

    /// Whether the condition has a fast path (it may still defer at run time).
    #[cfg(test)]
    pub(crate) fn has_fast_path(&self) -> bool {
        self.fast.is_some()
    }

    /// Evaluates with the CEL interpreter alone.
    pub(crate) fn interpret(
        &self,
        env: &Arc<Env>,
        activation: &Activation<'_>,
    ) -> Result<bool, EvaluationError> {
        let mut context = Context::with_env(Arc::clone(env));
        context.set_variable_resolver(activation);
        match CelValue::resolve(&self.metered, &context) {
            Ok(CelValue::Bool(value)) => Ok(value),
            Ok(other) => Err(EvaluationError::NotBoolean {
                found: other.type_of(),
            }),
            // The metering functions' own errors (the budget ran out) speak for themselves.
            Err(cel::ExecutionError::FunctionError { function, message })
                if function.starts_with('@') =>
            {
                Err(EvaluationError::Budget { message })
            }
            Err(source) => Err(EvaluationError::Interpreter { source }),
        }
    }
}

/// Rejects nesting deeper than `limit`, counting brackets outside string literals, so the
/// recursive parser never sees input deep enough to exhaust the stack.
fn check_nesting(source: &str, limit: usize) -> Result<(), ConditionError> {
    let mut depth = 0usize;
    let mut unary_run = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (column, c) in source.chars().enumerate() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        // Runs of unary operators (`!!!!x`, `----1`) recurse in the parser like brackets do.
        if matches!(c, '!' | '-') {
            unary_run += 1;
        } else if !c.is_whitespace() {
            unary_run = 0;
        }
        if depth.max(unary_run) > limit {
            return Err(ConditionError::TooDeep {
                depth: depth.max(unary_run),
                column: column + 1,
                limit,
            });
        }
    }
    Ok(())
}

/// Collects the names comprehension macros (`all`, `exists`, `map`, ...) bind.
fn comprehension_variables<'e>(expr: &'e IdedExpr, out: &mut HashSet<&'e str>) {
    match &expr.expr {
        Expr::Comprehension(comprehension) => {
            out.insert(&comprehension.iter_var);
            if let Some(second) = &comprehension.iter_var2 {
                out.insert(second);
            }
            out.insert(&comprehension.accu_var);
            for child in [
                &comprehension.iter_range,
                &comprehension.accu_init,
                &comprehension.loop_cond,
                &comprehension.loop_step,
                &comprehension.result,
            ] {
                comprehension_variables(child, out);
            }
        }
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                comprehension_variables(target, out);
            }
            for arg in &call.args {
                comprehension_variables(arg, out);
            }
        }
        Expr::List(list) => {
            for element in &list.elements {
                comprehension_variables(element, out);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                entry_variables(&entry.expr, out);
            }
        }
        Expr::Struct(structure) => {
            for entry in &structure.entries {
                entry_variables(&entry.expr, out);
            }
        }
        Expr::Select(select) => comprehension_variables(&select.operand, out),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn entry_variables<'e>(entry: &'e EntryExpr, out: &mut HashSet<&'e str>) {
    match entry {
        EntryExpr::StructField(field) => comprehension_variables(&field.value, out),
        EntryExpr::MapEntry(entry) => {
            comprehension_variables(&entry.key, out);
            comprehension_variables(&entry.value, out);
        }
    }
}

/// What a condition is evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct EvaluationInput<'a> {
    /// The tool being called.
    pub tool: &'a ToolDescriptor,
    /// The call's arguments (a JSON object).
    pub args: &'a Value,
    /// Who is calling.
    pub principal: &'a Principal,
    /// Through which client.
    pub client: &'a ClientInfo,
    /// The time of the call.
    pub now: DateTime<Utc>,
}

type BoxedVal<'a> = Box<dyn Val + 'a>;

/// The variables of one evaluation, each built on first use.
pub(crate) struct Activation<'a> {
    input: &'a EvaluationInput<'a>,
    tool: &'a OnceLock<BoxedVal<'static>>,
    args: OnceLock<BoxedVal<'a>>,
    user: OnceLock<BoxedVal<'a>>,
    client: OnceLock<BoxedVal<'a>>,
    now: OnceLock<BoxedVal<'a>>,
}

impl<'a> Activation<'a> {
    /// An activation for `input`, reusing (or filling) the per-tool cache cell `tool`.
    pub(crate) fn new(
        input: &'a EvaluationInput<'a>,
        tool: &'a OnceLock<BoxedVal<'static>>,
    ) -> Self {
        Self {
            input,
            tool,
            args: OnceLock::new(),
            user: OnceLock::new(),
            client: OnceLock::new(),
            now: OnceLock::new(),
        }
    }
}

impl VariableResolver for Activation<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let input = self.input;
        let value: &'b (dyn Val + 'b) = match variable {
            "tool" => self.tool.get_or_init(|| tool_value(input.tool)).as_ref(),
            "args" => self.args.get_or_init(|| json_value(input.args)).as_ref(),
            "user" => self
                .user
                .get_or_init(|| user_value(input.principal))
                .as_ref(),
            "client" => self
                .client
                .get_or_init(|| client_value(input.client))
                .as_ref(),
            "now" => self
                .now
                .get_or_init(|| Box::new(CelTimestamp::from(input.now.fixed_offset())))
                .as_ref(),
            _ => return None,
        };
        Some(CowVal::Borrowed(value))
    }
}

fn map<'a>(entries: impl IntoIterator<Item = (&'a str, BoxedVal<'a>)>) -> BoxedVal<'a> {
    let map: HashMap<CelMapKey<'a>, BoxedVal<'a>> = entries
        .into_iter()
        .map(|(key, value)| (CelMapKey::from(key), value))
        .collect();
    Box::new(CelMap::from(map))
}

fn string<'a>(text: &'a str) -> BoxedVal<'a> {
    Box::new(CelString::from(text))
}

fn optional_string(text: Option<&str>) -> BoxedVal<'_> {
    text.map_or_else(|| Box::new(CelNull) as BoxedVal<'_>, string)
}

/// Converts JSON to CEL without copying strings.
pub(crate) fn json_value(value: &Value) -> BoxedVal<'_> {
    match value {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Box::new(CelInt::from(i))
            } else if let Some(u) = n.as_u64() {
                Box::new(CelUInt::from(u))
            } else {
                Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        Value::String(s) => string(s),
        Value::Array(items) => Box::new(CelList::from(
            items.iter().map(json_value).collect::<Vec<_>>(),
        )),
        Value::Object(fields) => map(fields.iter().map(|(k, v)| (k.as_str(), json_value(v)))),
    }
}

/// The `tool` variable. Absent annotations take the MCP specification's defaults: not read-only,
/// destructive, not idempotent, open world.
fn tool_value(tool: &ToolDescriptor) -> BoxedVal<'static> {
    let a = &tool.annotations;
    let read_only = a.read_only_hint.unwrap_or(false);
    let hint = |name: &'static str, value: bool| {
        (name, Box::new(CelBool::from(value)) as BoxedVal<'static>)
    };
    let mut annotations = vec![
        hint("readOnlyHint", read_only),
        hint("destructiveHint", a.destructive_hint.unwrap_or(!read_only)),
        hint("idempotentHint", a.idempotent_hint.unwrap_or(false)),
        hint("openWorldHint", a.open_world_hint.unwrap_or(true)),
    ];
    if let Some(title) = &a.title {
        annotations.push(("title", Box::new(CelString::from(title.clone()))));
    }
    let owned = |text: &str| Box::new(CelString::from(text.to_owned())) as BoxedVal<'static>;
    map([
        ("name", owned(&tool.name)),
        ("server", owned(&tool.server)),
        ("exposed_name", owned(&tool.exposed_name)),
        ("kind", owned(tool.kind.as_str())),
        ("annotations", map(annotations)),
    ])
}

fn user_value(principal: &Principal) -> BoxedVal<'_> {
    let roles: Vec<BoxedVal<'_>> = principal.roles.iter().map(|r| string(r)).collect();
    map([
        ("id", string(&principal.id)),
        ("email", optional_string(principal.email.as_deref())),
        ("roles", Box::new(CelList::from(roles)) as BoxedVal<'_>),
        ("api_key", optional_string(principal.api_key_id.as_deref())),
        ("organization_id", string(&principal.organization_id)),
    ])
}

fn client_value(client: &ClientInfo) -> BoxedVal<'_> {
    map([
        ("name", optional_string(client.name.as_deref())),
        ("version", optional_string(client.version.as_deref())),
    ])
}

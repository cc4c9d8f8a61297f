//! A native evaluator for the common subset of CEL, in front of the interpreter.
//!
//! Most policy conditions are field accesses, comparisons with literals, `&&`, `||`, `!`, `in`,
//! `has()`, string tests and `size()`. Those compile to a small tree evaluated directly over the
//! call's JSON arguments and the tool, user and client, with no activation at all.
//!
//! The fast path only answers when it is certain its answer is the interpreter's: it handles
//! same-type scalar comparisons and present fields. Anything else (a missing field, mixed numeric
//! types, timestamps, comprehensions, an unknown function) makes it *defer*, and the condition is
//! evaluated by `cel` as usual, errors and all. A differential property test checks every answer
//! it gives against the interpreter.

use super::condition::EvaluationInput;
use super::cost::{charge, elements_cost, text_cost};
use cel::common::ast::{Expr, IdedExpr, LiteralValue, operators};
use serde_json::Value;

/// Where a path starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Root {
    Tool,
    Args,
    User,
    Client,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compare {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StringTest {
    StartsWith,
    EndsWith,
    Contains,
}

/// A compiled fast-path expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FastExpr {
    Literal(Literal),
    Path(Root, Box<[Box<str>]>),
    Has(Root, Box<[Box<str>]>),
    Not(Box<FastExpr>),
    And(Box<FastExpr>, Box<FastExpr>),
    Or(Box<FastExpr>, Box<FastExpr>),
    Compare(Compare, Box<FastExpr>, Box<FastExpr>),
    In(Box<FastExpr>, Box<FastExpr>),
    String(StringTest, Box<FastExpr>, Box<FastExpr>),
    Size(Box<FastExpr>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    String(Box<str>),
    Null,
}

/// A value during fast evaluation; borrowed from the input wherever possible.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(&'a str),
    Null,
    List(&'a [Value]),
    Map(&'a serde_json::Map<String, Value>),
    Strings(&'a [String]),
}

impl FastExpr {
    /// Compiles `expr` if every node is in the fast subset.
    pub(crate) fn compile(expr: &IdedExpr) -> Option<Self> {
        match &expr.expr {
            Expr::Literal(literal) => Some(Self::Literal(match literal {
                LiteralValue::Boolean(b) => Literal::Bool(bool::from(*b)),
                LiteralValue::Int(i) => Literal::Int(i64::from(*i)),
                LiteralValue::UInt(u) => Literal::UInt(u64::from(*u)),
                LiteralValue::Double(d) => Literal::Double(f64::from(*d)),
                LiteralValue::String(s) => Literal::String(String::from(s.clone()).into()),
                LiteralValue::Null => Literal::Null,
                LiteralValue::Bytes(_) => return None,
            })),
            Expr::Select(select) => {
                let (root, mut fields) = path(&select.operand)?;
                fields.push(select.field.as_str().into());
                Some(if select.test {
                    Self::Has(root, fields.into())
                } else {
                    Self::Path(root, fields.into())
                })
            }
            Expr::Call(call) => {
                let arg = |i: usize| call.args.get(i).and_then(Self::compile).map(Box::new);
                let binary = |make: &dyn Fn(Box<Self>, Box<Self>) -> Self| {
                    (call.target.is_none() && call.args.len() == 2).then_some(())?;
                    Some(make(arg(0)?, arg(1)?))
                };
                let compare = |op| binary(&|a, b| Self::Compare(op, a, b));
                match call.func_name.as_str() {
                    operators::LOGICAL_AND => binary(&Self::And),
                    operators::LOGICAL_OR => binary(&Self::Or),
                    operators::LOGICAL_NOT if call.args.len() == 1 => Some(Self::Not(arg(0)?)),
                    operators::EQUALS => compare(Compare::Eq),
                    operators::NOT_EQUALS => compare(Compare::Ne),
                    operators::LESS => compare(Compare::Lt),
                    operators::LESS_EQUALS => compare(Compare::Le),
                    operators::GREATER => compare(Compare::Gt),
                    operators::GREATER_EQUALS => compare(Compare::Ge),
                    operators::IN => binary(&Self::In),
                    "size" => match (&call.target, call.args.as_slice()) {
                        (None, [only]) => Some(Self::Size(Box::new(Self::compile(only)?))),
                        (Some(target), []) => Some(Self::Size(Box::new(Self::compile(target)?))),
                        _ => None,
                    },
                    name @ ("startsWith" | "endsWith" | "contains") => {
                        let target = Box::new(Self::compile(call.target.as_deref()?)?);
                        let [only] = call.args.as_slice() else {
                            return None;
                        };
                        let test = match name {
                            "startsWith" => StringTest::StartsWith,
                            "endsWith" => StringTest::EndsWith,
                            _ => StringTest::Contains,
                        };
                        Some(Self::String(test, target, Box::new(Self::compile(only)?)))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The boolean the interpreter would produce, or `None` to defer to it.
    pub(crate) fn evaluate(&self, input: &EvaluationInput<'_>) -> Option<bool> {
        match self.value(input)? {
            Val::Bool(b) => Some(b),
            _ => None,
        }
    }

    fn value<'a>(&'a self, input: &EvaluationInput<'a>) -> Option<Val<'a>> {
        match self {
            Self::Literal(literal) => Some(match literal {
                Literal::Bool(b) => Val::Bool(*b),
                Literal::Int(i) => Val::Int(*i),
                Literal::UInt(u) => Val::UInt(*u),
                Literal::Double(d) => Val::Double(*d),
                Literal::String(s) => Val::Str(s),
                Literal::Null => Val::Null,
            }),
            Self::Path(root, fields) => resolve(input, *root, fields),
            Self::Has(root, fields) => {
                let (last, parents) = fields.split_last()?;
                match resolve(input, *root, parents)? {
                    Val::Map(map) => Some(Val::Bool(map.contains_key(&**last))),
                    _ => None,
                }
            }
            Self::Not(inner) => match inner.value(input)? {
                Val::Bool(b) => Some(Val::Bool(!b)),
                _ => None,
            },
            // `false && x` is false and `true || x` is true whatever x is, errors included.
            Self::And(left, right) => match left.value(input)? {
                Val::Bool(false) => Some(Val::Bool(false)),
                Val::Bool(true) => match right.value(input)? {
                    Val::Bool(b) => Some(Val::Bool(b)),
                    _ => None,
                },
                _ => None,
            },
            Self::Or(left, right) => match left.value(input)? {
                Val::Bool(true) => Some(Val::Bool(true)),
                Val::Bool(false) => match right.value(input)? {
                    Val::Bool(b) => Some(Val::Bool(b)),
                    _ => None,
                },
                _ => None,
            },
            Self::Compare(op, left, right) => {
                let left = left.value(input)?;
                let ordered = matches!(
                    left,
                    Val::Int(_) | Val::UInt(_) | Val::Double(_) | Val::Str(_)
                );
                if !ordered && !matches!(op, Compare::Eq | Compare::Ne) {
                    return None;
                }
                let ordering = compare(left, right.value(input)?)?;
                Some(Val::Bool(match op {
                    Compare::Eq => ordering.is_eq(),
                    Compare::Ne => ordering.is_ne(),
                    Compare::Lt => ordering.is_lt(),
                    Compare::Le => ordering.is_le(),
                    Compare::Gt => ordering.is_gt(),
                    Compare::Ge => ordering.is_ge(),
                }))
            }
            Self::In(needle, haystack) => {
                let needle = needle.value(input)?;
                let found = match haystack.value(input)? {
                    Val::Map(map) => match needle {
                        Val::Str(key) => map.contains_key(key),
                        _ => return None,
                    },
                    Val::List(items) => {
                        // Out of budget: defer, and the interpreter reports it.
                        charge(elements_cost(items.len())).then_some(())?;
                        let mut found = false;
                        for item in items {
                            found |= compare(needle, json(item)?)?.is_eq();
                        }
                        found
                    }
                    Val::Strings(items) => match needle {
                        Val::Str(needle) => {
                            charge(elements_cost(items.len())).then_some(())?;
                            items.iter().any(|item| item == needle)
                        }
                        _ => return None,
                    },
                    _ => return None,
                };
                Some(Val::Bool(found))
            }
            Self::String(test, target, argument) => {
                match (target.value(input)?, argument.value(input)?) {
                    (Val::Str(s), Val::Str(arg)) => {
                        charge(text_cost(s.len())).then_some(())?;
                        Some(Val::Bool(match test {
                            StringTest::StartsWith => s.starts_with(arg),
                            StringTest::EndsWith => s.ends_with(arg),
                            StringTest::Contains => s.contains(arg),
                        }))
                    }
                    _ => None,
                }
            }
            Self::Size(inner) => {
                let size = match inner.value(input)? {
                    Val::Str(s) => {
                        charge(text_cost(s.len())).then_some(())?;
                        s.chars().count()
                    }
                    Val::List(items) => items.len(),
                    Val::Map(map) => map.len(),
                    Val::Strings(items) => items.len(),
                    _ => return None,
                };
                i64::try_from(size).ok().map(Val::Int)
            }
        }
    }
}

/// The root and fields of a path like `args.a.b`; `None` if the operand is not one.
fn path(expr: &IdedExpr) -> Option<(Root, Vec<Box<str>>)> {
    match &expr.expr {
        Expr::Ident(name) => Some((
            match name.as_str() {
                "tool" => Root::Tool,
                "args" => Root::Args,
                "user" => Root::User,
                "client" => Root::Client,
                _ => return None,
            },
            Vec::new(),
        )),
        Expr::Select(select) if !select.test => {
            let (root, mut fields) = path(&select.operand)?;
            fields.push(select.field.as_str().into());
            Some((root, fields))
        }
        _ => None,
    }
}

/// Compares same-type scalars; anything else (or an exhausted budget) defers.
fn compare(left: Val<'_>, right: Val<'_>) -> Option<std::cmp::Ordering> {
    match (left, right) {
        (Val::Bool(a), Val::Bool(b)) => Some(a.cmp(&b)),
        (Val::Int(a), Val::Int(b)) => Some(a.cmp(&b)),
        (Val::UInt(a), Val::UInt(b)) => Some(a.cmp(&b)),
        (Val::Double(a), Val::Double(b)) => a.partial_cmp(&b),
        (Val::Str(a), Val::Str(b)) => {
            charge(text_cost(a.len().min(b.len()))).then_some(())?;
            Some(a.cmp(b))
        }
        (Val::Null, Val::Null) => Some(std::cmp::Ordering::Equal),
        _ => None,
    }
}

/// A JSON value as the activation would present it (integers as `int` when they fit).
fn json(value: &Value) -> Option<Val<'_>> {
    Some(match value {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Val::Int(i),
            (None, Some(u)) => Val::UInt(u),
            (None, None) => Val::Double(n.as_f64()?),
        },
        Value::String(s) => Val::Str(s),
        Value::Array(items) => Val::List(items),
        Value::Object(map) => Val::Map(map),
    })
}

fn optional(text: Option<&str>) -> Val<'_> {
    text.map_or(Val::Null, Val::Str)
}

/// Follows `fields` from `root`; a field that is not there defers (the interpreter reports it).
fn resolve<'a>(input: &EvaluationInput<'a>, root: Root, fields: &[Box<str>]) -> Option<Val<'a>> {
    match root {
        Root::Args => {
            let mut value = input.args;
            for field in fields {
                value = value.as_object()?.get(&**field)?;
            }
            json(value)
        }
        Root::Tool => {
            let tool = input.tool;
            match fields {
                [name] => match &**name {
                    "name" => Some(Val::Str(&tool.name)),
                    "server" => Some(Val::Str(&tool.server)),
                    "exposed_name" => Some(Val::Str(&tool.exposed_name)),
                    _ => None,
                },
                [annotations, hint] if &**annotations == "annotations" => {
                    let a = &tool.annotations;
                    let read_only = a.read_only_hint.unwrap_or(false);
                    Some(Val::Bool(match &**hint {
                        "readOnlyHint" => read_only,
                        "destructiveHint" => a.destructive_hint.unwrap_or(!read_only),
                        "idempotentHint" => a.idempotent_hint.unwrap_or(false),
                        "openWorldHint" => a.open_world_hint.unwrap_or(true),
                        _ => return None,
                    }))
                }
                _ => None,
            }
        }
        Root::User => {
            let user = input.principal;
            match fields {
                [name] => match &**name {
                    "id" => Some(Val::Str(&user.id)),
                    "email" => Some(optional(user.email.as_deref())),
                    "roles" => Some(Val::Strings(&user.roles)),
                    "api_key" => Some(optional(user.api_key_id.as_deref())),
                    "organization_id" => Some(Val::Str(&user.organization_id)),
                    _ => None,
                },
                _ => None,
            }
        }
        Root::Client => match fields {
            [name] => match &**name {
                "name" => Some(optional(input.client.name.as_deref())),
                "version" => Some(optional(input.client.version.as_deref())),
                _ => None,
            },
            _ => None,
        },
    }
}

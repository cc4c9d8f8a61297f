//! What a CEL condition may cost: limits checked when it compiles, and a budget spent while it
//! runs.
//!
//! Policies are written by tenants, and one tenant's rule must neither crash the server nor
//! stall anyone else's calls. Three defences:
//!
//! - **Depth.** The parsed expression's depth is bounded ([`check_depth`], iterative, so a deep
//!   tree cannot overflow the checker itself). Evaluation recurses once per level, so a bounded
//!   tree keeps it far from the end of any thread's stack.
//! - **Estimate.** [`estimate`] prices the expression assuming every collection it reads holds
//!   [`ASSUMED_ITEMS`] items; conditions whose comprehensions nest too deep are refused at save
//!   time, before anyone is hurt.
//! - **Budget.** [`meter`] rewrites the expression so that every operand that can be large
//!   passes through a metering function that charges its size, and every comprehension charges
//!   each item it iterates. One call's evaluation draws on one budget ([`with_budget`]); when it
//!   runs out the evaluation fails with an error, and errors fail closed. The native fast path
//!   charges the same budget for the work it does ([`charge`]).
//!
//! Units are rough nanoseconds of interpreter work on these machines: an item of a collection
//! costs [`ELEMENT_COST`] to compare or copy, an iteration of a comprehension [`ITEM_COST`],
//! and every [`BYTES_PER_UNIT`] bytes of text one.

use cel::common::ast::LiteralValue;
use cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr, operators};
use cel::common::types::{CelBytes, CelList, CelMap, CelString, DYN_TYPE, INT_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{Env, ExecutionError};
use std::cell::Cell;

/// The function every metered operand passes through: charges the operand's size.
const METERED: &str = "@metered";
/// The function every comprehension's range passes through: charges its items.
const RANGE: &str = "@range";
/// The function the text of `matches()` passes through: charges its size times the pattern's.
const SCALED: &str = "@scaled";

/// Longest pattern `matches()` may be given, in bytes.
pub(crate) const MAX_PATTERN_BYTES: usize = 1024;
/// The compiled size a `matches()` pattern may have (the regex crate's own limit is 10 MiB).
const MAX_PATTERN_PROGRAM_BYTES: usize = 256 * 1024;

/// Cost of one element or entry of a collection (compared, hashed or copied).
pub(crate) const ELEMENT_COST: u64 = 10;
/// Cost of one iteration of a comprehension (`all`, `exists`, `map`, `filter`, ...).
pub(crate) const ITEM_COST: u64 = 300;
/// Bytes of text (or bytes) that cost one unit to scan or copy.
pub(crate) const BYTES_PER_UNIT: u64 = 8;
/// How many items the static estimate assumes each collection holds.
pub const ASSUMED_ITEMS: u64 = 100;

thread_local! {
    /// Units the evaluation running on this thread may still spend. Outside [`with_budget`]
    /// nothing is limited (the policy set always evaluates inside one).
    static REMAINING: Cell<u64> = const { Cell::new(u64::MAX) };
    /// Whether the running evaluation has run out.
    static EXHAUSTED: Cell<bool> = const { Cell::new(false) };
}

/// Restores the enclosing budget when an evaluation ends, however it ends.
struct Restore(u64, bool);

impl Drop for Restore {
    fn drop(&mut self) {
        REMAINING.set(self.0);
        EXHAUSTED.set(self.1);
    }
}

/// Runs `evaluate` with `units` to spend; also says whether they ran out.
pub(crate) fn with_budget<R>(units: u64, evaluate: impl FnOnce() -> R) -> (R, bool) {
    let _restore = Restore(REMAINING.replace(units), EXHAUSTED.replace(false));
    let result = evaluate();
    (result, EXHAUSTED.get())
}

/// Spends `units`; `false` (and nothing left) when the budget cannot cover them.
pub(crate) fn charge(units: u64) -> bool {
    let remaining = REMAINING.get();
    match remaining.checked_sub(units) {
        Some(left) => {
            REMAINING.set(left);
            true
        }
        None => {
            REMAINING.set(0);
            EXHAUSTED.set(true);
            false
        }
    }
}

/// Units to scan `bytes` bytes of text.
pub(crate) fn text_cost(bytes: usize) -> u64 {
    u64::try_from(bytes).unwrap_or(u64::MAX) / BYTES_PER_UNIT + 1
}

/// Units to look at `count` elements of a collection.
pub(crate) fn elements_cost(count: usize) -> u64 {
    u64::try_from(count)
        .unwrap_or(u64::MAX)
        .saturating_mul(ELEMENT_COST)
        .saturating_add(1)
}

fn exhausted(function: &str) -> ExecutionError {
    ExecutionError::function_error(
        function,
        "evaluation budget exhausted: the condition does more work than a rule may do per call",
    )
}

/// What looking at all of `value` costs, counted no further than `limit`.
fn measure(value: &dyn Val, limit: u64) -> u64 {
    let mut total = 0u64;
    let mut pending: Vec<&dyn Val> = vec![value];
    while let Some(value) = pending.pop() {
        if total > limit {
            break;
        }
        let cost = if let Some(text) = value.downcast_ref::<CelString>() {
            text_cost(text.inner().len())
        } else if let Some(bytes) = value.downcast_ref::<CelBytes>() {
            text_cost(bytes.inner().len())
        } else if let Some(list) = value.downcast_ref::<CelList>() {
            pending.extend(list.inner().iter().map(|item| &**item));
            elements_cost(list.inner().len())
        } else if let Some(map) = value.downcast_ref::<CelMap>() {
            pending.extend(map.inner().values().map(|item| &**item));
            elements_cost(map.inner().len())
        } else {
            1
        };
        total = total.saturating_add(cost);
    }
    total
}

/// `@metered(x)`: `x`, once its size is paid for.
fn metered<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let value = args.pop().ok_or_else(|| exhausted(METERED))?;
    let cost = measure(value.as_ref(), REMAINING.get());
    if charge(cost) {
        Ok(value)
    } else {
        Err(exhausted(METERED))
    }
}

/// `@scaled(x, factor)`: `x`, once its size times `factor` is paid for (a regular expression
/// may visit each byte of its text once per state of its pattern).
fn scaled<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let factor = args
        .pop()
        .and_then(|f| {
            f.downcast_ref::<cel::common::types::CelInt>()
                .map(|i| *i.inner())
        })
        .and_then(|f| u64::try_from(f).ok())
        .ok_or_else(|| exhausted(SCALED))?;
    let value = args.pop().ok_or_else(|| exhausted(SCALED))?;
    let cost = measure(value.as_ref(), REMAINING.get()).saturating_mul(factor);
    if charge(cost) {
        Ok(value)
    } else {
        Err(exhausted(SCALED))
    }
}

/// `@range(x)`: `x`, once iterating over it is paid for.
fn range<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let value = args.pop().ok_or_else(|| exhausted(RANGE))?;
    let items = value
        .as_sizer()
        .map_or(0, |sizer| u64::try_from(*sizer.size().inner()).unwrap_or(0));
    let cost = items
        .saturating_mul(ITEM_COST)
        .saturating_add(measure(value.as_ref(), REMAINING.get()));
    if charge(cost) {
        Ok(value)
    } else {
        Err(exhausted(RANGE))
    }
}

/// The standard CEL environment plus the metering functions [`meter`] calls.
pub(crate) fn environment() -> Env {
    let mut env = Env::stdlib();
    // Names starting with `@` cannot be written in CEL source: only the rewrite calls them.
    let functions: [(
        &str,
        &str,
        Vec<cel::common::types::Type>,
        cel::common::functions::Function,
    ); 3] = [
        (METERED, "preloop_metered", vec![DYN_TYPE], metered),
        (RANGE, "preloop_range", vec![DYN_TYPE], range),
        (SCALED, "preloop_scaled", vec![DYN_TYPE, INT_TYPE], scaled),
    ];
    for (name, id, arguments, function) in functions {
        // The names are ours, added once to a fresh environment, so this cannot fail; if it
        // did, every metered call would fail to resolve, and errors fail closed.
        env.add_overload(name, id, arguments, function).ok();
    }
    env
}

/// Operators whose own work is constant whatever their operands hold: their operands are
/// not metered (they are booleans, or an index into a collection).
fn constant_time(function: &str) -> bool {
    matches!(
        function,
        operators::LOGICAL_AND
            | operators::LOGICAL_OR
            | operators::LOGICAL_NOT
            | operators::CONDITIONAL
            | operators::NOT_STRICTLY_FALSE
            | operators::INDEX
            | operators::OPT_INDEX
            | operators::OPT_SELECT
            | operators::NEGATE
    )
}

/// Comparison and arithmetic operators, which the estimate assumes see scalars.
fn scalar_operator(function: &str) -> bool {
    matches!(
        function,
        operators::EQUALS
            | operators::NOT_EQUALS
            | operators::LESS
            | operators::LESS_EQUALS
            | operators::GREATER
            | operators::GREATER_EQUALS
            | operators::ADD
            | operators::SUBSTRACT
            | operators::MULTIPLY
            | operators::DIVIDE
            | operators::MODULO
    )
}

/// Whether an operand can be large: anything but a literal, a list or map literal (whose
/// elements are metered themselves) and the comprehensions' own accumulators (`@result`,
/// which the interpreter must recognise to build `map` and `filter` results in place).
fn worth_metering(expr: &IdedExpr) -> bool {
    match &expr.expr {
        Expr::Literal(_) | Expr::List(_) | Expr::Map(_) | Expr::Struct(_) | Expr::Unspecified => {
            false
        }
        Expr::Ident(name) => !name.starts_with('@'),
        Expr::Select(_) | Expr::Call(_) | Expr::Comprehension(_) => true,
    }
}

/// Wraps `expr` in a call of `function`.
fn wrap(expr: &mut IdedExpr, function: &str) {
    let inner = std::mem::take(expr);
    *expr = IdedExpr {
        id: inner.id,
        expr: Expr::Call(CallExpr {
            func_name: function.to_owned(),
            target: None,
            args: vec![inner],
        }),
    };
}

/// The text operand of a `matches()` call and the factor its size is charged by (from the
/// pattern's length; [`check_patterns`] made sure the pattern is a literal).
fn regex_text(call: &mut CallExpr) -> Option<(&mut IdedExpr, u64)> {
    if call.func_name != "matches" {
        return None;
    }
    let (text, pattern) = match (call.target.as_deref_mut(), call.args.as_mut_slice()) {
        (Some(text), [pattern]) => (text, &*pattern),
        (None, [text, pattern]) => (text, &*pattern),
        _ => return None,
    };
    let length = literal_string(pattern).map_or(MAX_PATTERN_BYTES, str::len);
    let factor = u64::try_from(length / 8 + 1).unwrap_or(u64::MAX);
    Some((text, factor))
}

fn literal_string(expr: &IdedExpr) -> Option<&str> {
    match &expr.expr {
        Expr::Literal(LiteralValue::String(text)) => Some(text.inner()),
        _ => None,
    }
}

fn wrap_scaled(text: &mut IdedExpr, factor: u64) {
    let inner = std::mem::take(text);
    let id = inner.id;
    let factor = IdedExpr {
        id,
        expr: Expr::Literal(LiteralValue::Int(
            i64::try_from(factor).unwrap_or(i64::MAX).into(),
        )),
    };
    *text = IdedExpr {
        id,
        expr: Expr::Call(CallExpr {
            func_name: SCALED.to_owned(),
            target: None,
            args: vec![inner, factor],
        }),
    };
}

/// What is wrong with a `matches()` call of a condition.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MatchesError {
    /// The call has the wrong number of arguments.
    #[error("matches() takes a text and a pattern")]
    Arity,
    /// The pattern is computed (from the call's arguments, say), not written in the condition.
    #[error("the pattern of matches() must be a string literal")]
    NotLiteral,
    /// The pattern is longer than the limit (1 KiB).
    #[error("the pattern of matches() is {length} bytes long; the limit is {MAX_PATTERN_BYTES}")]
    TooLong {
        /// Its length in bytes.
        length: usize,
    },
    /// The pattern is not a regular expression, or compiles too large.
    #[error("the pattern of matches() does not compile: {source}")]
    Compile {
        /// What the regular-expression compiler found.
        #[source]
        source: regex::Error,
    },
}

/// Refuses `matches()` with a pattern that is not a string literal, or one that is long or
/// compiles large: a pattern from the call's arguments would be compiled, at any size, on
/// every call.
pub(crate) fn check_patterns(expr: &IdedExpr) -> Result<(), MatchesError> {
    let mut pending = vec![expr];
    while let Some(node) = pending.pop() {
        if let Expr::Call(call) = &node.expr
            && call.func_name == "matches"
        {
            let pattern = match (&call.target, call.args.as_slice()) {
                (Some(_), [pattern]) | (None, [_, pattern]) => pattern,
                _ => return Err(MatchesError::Arity),
            };
            let Some(pattern) = literal_string(pattern) else {
                return Err(MatchesError::NotLiteral);
            };
            if pattern.len() > MAX_PATTERN_BYTES {
                return Err(MatchesError::TooLong {
                    length: pattern.len(),
                });
            }
            regex::RegexBuilder::new(pattern)
                .size_limit(MAX_PATTERN_PROGRAM_BYTES)
                .build()
                .map_err(|source| MatchesError::Compile { source })?;
        }
        pending.extend(children(node));
    }
    Ok(())
}

fn meter_operand(expr: &mut IdedExpr) {
    if worth_metering(expr) {
        wrap(expr, METERED);
    }
}

/// Rewrites `expr` so that evaluating it spends the budget: every operand that can be large
/// (of every call but the constant-time operators, and every element of a list or map literal)
/// is metered, and every comprehension's range pays for its items. Values are unchanged, so
/// the rewritten expression means what the original means. `expr` must have passed
/// [`check_depth`] (this recursion is as deep as the tree).
pub(crate) fn meter(expr: &mut IdedExpr) {
    match &mut expr.expr {
        Expr::Call(call) => {
            if let Some(target) = &mut call.target {
                meter(target);
            }
            call.args.iter_mut().for_each(meter);
            if let Some((text, factor)) = regex_text(call) {
                wrap_scaled(text, factor);
            } else if !constant_time(&call.func_name) {
                if let Some(target) = &mut call.target {
                    meter_operand(target);
                }
                call.args.iter_mut().for_each(meter_operand);
            }
        }
        Expr::Comprehension(comprehension) => {
            for child in [
                &mut comprehension.iter_range,
                &mut comprehension.accu_init,
                &mut comprehension.loop_cond,
                &mut comprehension.loop_step,
                &mut comprehension.result,
            ] {
                meter(child);
            }
            wrap(&mut comprehension.iter_range, RANGE);
        }
        Expr::List(list) => {
            for element in &mut list.elements {
                meter(element);
                meter_operand(element);
            }
        }
        Expr::Map(map) => {
            for entry in &mut map.entries {
                meter_entry(&mut entry.expr);
            }
        }
        Expr::Struct(structure) => {
            for entry in &mut structure.entries {
                meter_entry(&mut entry.expr);
            }
        }
        Expr::Select(select) => meter(&mut select.operand),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn meter_entry(entry: &mut EntryExpr) {
    match entry {
        EntryExpr::StructField(field) => {
            meter(&mut field.value);
            meter_operand(&mut field.value);
        }
        EntryExpr::MapEntry(entry) => {
            for part in [&mut entry.key, &mut entry.value] {
                meter(part);
                meter_operand(part);
            }
        }
    }
}

/// The direct children of a node.
fn children(expr: &IdedExpr) -> Vec<&IdedExpr> {
    match &expr.expr {
        Expr::Call(call) => call
            .target
            .as_deref()
            .into_iter()
            .chain(&call.args)
            .collect(),
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map
            .entries
            .iter()
            .flat_map(|e| entry_parts(&e.expr))
            .collect(),
        Expr::Struct(s) => s
            .entries
            .iter()
            .flat_map(|e| entry_parts(&e.expr))
            .collect(),
        Expr::Select(select) => vec![&*select.operand],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

fn entry_parts(entry: &EntryExpr) -> Vec<&IdedExpr> {
    match entry {
        EntryExpr::StructField(field) => vec![&field.value],
        EntryExpr::MapEntry(entry) => vec![&entry.key, &entry.value],
    }
}

/// The depth of `expr` if it is at most `limit`, else the id of a node past the limit. Walks
/// the tree with an explicit stack: no recursion, whatever the depth.
pub(crate) fn check_depth(expr: &IdedExpr, limit: usize) -> Result<usize, u64> {
    let mut deepest = 0;
    let mut pending = vec![(expr, 1usize)];
    while let Some((node, depth)) = pending.pop() {
        if depth > limit {
            return Err(node.id);
        }
        deepest = deepest.max(depth);
        pending.extend(children(node).into_iter().map(|child| (child, depth + 1)));
    }
    Ok(deepest)
}

/// A static estimate of what evaluating `expr` costs, in budget units, assuming every
/// collection a comprehension iterates holds [`ASSUMED_ITEMS`] items of modest size. `expr` must have passed
/// [`check_depth`].
pub(crate) fn estimate(expr: &IdedExpr) -> u64 {
    let assumed_collection = elements_cost(usize::try_from(ASSUMED_ITEMS).unwrap_or(usize::MAX));
    match &expr.expr {
        Expr::Literal(_) | Expr::Unspecified => 0,
        Expr::Ident(_) => 1,
        Expr::Select(select) => estimate(&select.operand).saturating_add(1),
        Expr::Call(call) => {
            // Comparisons and arithmetic usually see scalars; membership, concatenation and
            // functions (string tests, size, ...) are assumed to scan a collection.
            let per_operand = if scalar_operator(&call.func_name) {
                ELEMENT_COST
            } else {
                assumed_collection
            };
            let operands = call.target.as_deref().into_iter().chain(&call.args);
            let mut cost = 1u64;
            for operand in operands {
                cost = cost.saturating_add(estimate(operand));
                if !constant_time(&call.func_name) && worth_metering(operand) {
                    cost = cost.saturating_add(per_operand);
                }
            }
            cost
        }
        Expr::Comprehension(c) => {
            let per_item = ITEM_COST
                .saturating_add(estimate(&c.loop_cond))
                .saturating_add(estimate(&c.loop_step));
            estimate(&c.iter_range)
                .saturating_add(assumed_collection)
                .saturating_add(estimate(&c.accu_init))
                .saturating_add(estimate(&c.result))
                .saturating_add(ASSUMED_ITEMS.saturating_mul(per_item))
        }
        Expr::List(_) | Expr::Map(_) | Expr::Struct(_) => children(expr)
            .into_iter()
            .map(estimate)
            .fold(1u64, |total, cost| {
                total.saturating_add(cost).saturating_add(ELEMENT_COST)
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(source: &str) -> IdedExpr {
        environment().parser().parse(source).unwrap()
    }

    #[test]
    fn the_budget_is_spent_and_restored() {
        let ((), exhausted) = with_budget(10, || {
            assert!(charge(4));
            assert!(charge(6));
            // An inner evaluation has its own budget; the outer one is back afterwards.
            let ((), inner_exhausted) = with_budget(5, || assert!(charge(5)));
            assert!(!inner_exhausted);
            assert!(!charge(1));
        });
        assert!(exhausted);
        assert!(charge(u64::MAX / 2), "nothing is limited outside a budget");
    }

    #[test]
    fn depth_is_checked_without_recursion() {
        let chain = vec!["1"; 3000].join("+");
        let expr = environment().parser().parse(&chain).unwrap();
        assert!(check_depth(&expr, 64).is_err());
        assert_eq!(check_depth(&parsed("a.b == 1"), 64), Ok(3));
    }

    #[test]
    fn nested_comprehensions_are_estimated_as_they_multiply() {
        let one = estimate(&parsed("args.l.all(x, x > 1)"));
        let two = estimate(&parsed("args.l.all(x, args.l.all(y, x > y))"));
        let three = estimate(&parsed(
            "args.l.all(x, args.l.all(y, args.l.all(z, x > y)))",
        ));
        assert!(two > one * 50, "{one} {two}");
        assert!(three > two * 50, "{two} {three}");
        assert!(estimate(&parsed("tool.name == \"x\"")) < 1_000);
    }
}

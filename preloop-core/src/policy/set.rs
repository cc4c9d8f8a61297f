//! Compiled policy sets: compilation, the tool-pattern index, and evaluation.

use super::condition::{Activation, Condition, EvaluationInput, PolicyLimits};
use super::decision::{Decision, Effect, Reason, RuleInfo, ShadowDecision};
use super::document::{ActionKind, OnError, PolicyDocument, RuleMode};
use super::errors::{PolicyError, RuleError, RuleProblem};
use super::pattern::NamePattern;
use crate::principal::{Principal, PrincipalSelector};
use crate::registry::{OperationKind, ToolAnnotations, ToolDescriptor};
use cel::Env;
use cel::common::value::Val;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

/// Longest rule id, in characters.
pub const MAX_RULE_ID_CHARS: usize = 128;
/// Longest rule description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4096;

/// Stack of the thread policies compile on: the CEL parser recurses once per operator, and a
/// 4 KiB expression of chained comparisons needs more than 1 MiB before its depth can be
/// checked (measured in a debug build: 1 MiB overflows, 2 MiB does not).
const COMPILER_STACK_BYTES: usize = 32 << 20;

#[derive(Debug)]
struct CompiledRule {
    info: Arc<RuleInfo>,
    principals: Vec<PrincipalSelector>,
    condition: Option<Condition>,
    effect: Effect,
    shadow: bool,
}

/// Rules whose tool and server patterns can match one tool, with the tool's CEL value.
#[derive(Debug)]
struct Candidates {
    server: Box<str>,
    name: Box<str>,
    annotations: ToolAnnotations,
    rules: Box<[u32]>,
    tool_value: OnceLock<Box<dyn Val>>,
}

impl Candidates {
    fn describes(&self, tool: &ToolDescriptor) -> bool {
        *self.server == *tool.server
            && *self.name == *tool.name
            && self.annotations == tool.annotations
    }
}

/// Most tools whose candidate lists are memoized; past it, lists are computed per call.
const MAX_CACHED_TOOLS: usize = 65_536;

/// The index from tool to candidate rules: exact tool names in a map, wildcard patterns tested
/// once per tool, and the result memoized per exposed name.
#[derive(Debug)]
struct RuleIndex {
    /// Rules with at least one exact tool pattern, by that name.
    exact: HashMap<Box<str>, Vec<u32>>,
    /// Rules with a wildcard tool pattern, with those patterns.
    wildcard: Vec<(u32, Vec<NamePattern>)>,
    /// Server patterns per rule (empty: any server).
    servers: Vec<Vec<NamePattern>>,
    cache: RwLock<HashMap<Box<str>, Arc<Candidates>>>,
}

impl RuleIndex {
    fn new(tool_patterns: Vec<Vec<NamePattern>>, servers: Vec<Vec<NamePattern>>) -> Self {
        let mut exact: HashMap<Box<str>, Vec<u32>> = HashMap::new();
        let mut wildcard = Vec::new();
        for (index, patterns) in tool_patterns.into_iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let (exacts, wildcards): (Vec<_>, Vec<_>) =
                patterns.into_iter().partition(|p| p.exact().is_some());
            for pattern in exacts {
                if let Some(name) = pattern.exact() {
                    exact.entry(name.into()).or_default().push(index);
                }
            }
            if !wildcards.is_empty() {
                wildcard.push((index, wildcards));
            }
        }
        Self {
            exact,
            wildcard,
            servers,
            cache: RwLock::new(HashMap::new()),
        }
    }

    fn compute(&self, tool: &ToolDescriptor) -> Candidates {
        let names = [tool.exposed_name.as_str(), tool.name.as_str()];
        let mut rules: Vec<u32> = names
            .iter()
            .filter_map(|name| self.exact.get(*name))
            .flatten()
            .copied()
            .chain(
                self.wildcard
                    .iter()
                    .filter(|(_, patterns)| {
                        patterns.iter().any(|p| names.iter().any(|n| p.matches(n)))
                    })
                    .map(|(index, _)| *index),
            )
            .filter(|index| {
                self.servers
                    .get(*index as usize)
                    .is_none_or(|s| s.is_empty() || s.iter().any(|p| p.matches(&tool.server)))
            })
            .collect();
        rules.sort_unstable();
        rules.dedup();
        Candidates {
            server: tool.server.as_str().into(),
            name: tool.name.as_str().into(),
            annotations: tool.annotations.clone(),
            rules: rules.into_boxed_slice(),
            tool_value: OnceLock::new(),
        }
    }

    /// The candidates for `tool`, from the memo when it describes the same tool.
    fn candidates(&self, tool: &ToolDescriptor) -> Arc<Candidates> {
        {
            let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(found) = cache
                .get(tool.exposed_name.as_str())
                .filter(|found| found.describes(tool))
            {
                return Arc::clone(found);
            }
        }
        let computed = Arc::new(self.compute(tool));
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() < MAX_CACHED_TOOLS || cache.contains_key(tool.exposed_name.as_str()) {
            cache.insert(tool.exposed_name.as_str().into(), Arc::clone(&computed));
        }
        computed
    }
}

/// A compiled, immutable policy set. Compile once when the policy changes; evaluate per call.
pub struct PolicySet {
    rules: Vec<CompiledRule>,
    default_effect: Effect,
    shadow_set: bool,
    on_error: OnError,
    /// Candidate rules of tool calls.
    tools: RuleIndex,
    /// Candidate rules of prompt gets.
    prompts: RuleIndex,
    /// Candidate rules of resource reads.
    resources: RuleIndex,
    /// Candidate rules of questions to the calling client.
    questions: RuleIndex,
    env: Arc<Env>,
    budget: u64,
    document: PolicyDocument,
}

/// Estimated cost (budget units) above which a condition is costly: evaluating it may take
/// long enough that a server should run it away from the threads serving other requests.
pub const COSTLY_CONDITION: u64 = 10_000;

/// What a decision may spend where the call is (about 0.1 ms) before it is made apart
/// instead ([`PolicySet::try_evaluate`]): ordinary rules spend a few hundred units, but cheap
/// rules on very large arguments can spend more.
pub const INLINE_BUDGET: u64 = 100_000;

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field("rules", &self.rules)
            .field("default_effect", &self.default_effect)
            .field("shadow_set", &self.shadow_set)
            .field("on_error", &self.on_error)
            .finish_non_exhaustive()
    }
}

impl PolicySet {
    /// Compiles `document` with the default [`PolicyLimits`].
    pub fn compile(document: &PolicyDocument) -> Result<Self, PolicyError> {
        Self::compile_with_limits(document, &PolicyLimits::default())
    }

    /// Compiles `document`, reporting every invalid rule.
    ///
    /// Compilation runs on a thread of its own with a large stack ([`COMPILER_STACK_BYTES`]), so
    /// that no expression, however hostile, can overflow the caller's: what is accepted is
    /// bounded in depth ([`PolicyLimits::max_expression_depth`]) and safe to evaluate anywhere.
    pub fn compile_with_limits(
        document: &PolicyDocument,
        limits: &PolicyLimits,
    ) -> Result<Self, PolicyError> {
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("preloop-policy-compiler".to_owned())
                .stack_size(COMPILER_STACK_BYTES)
                .spawn_scoped(scope, || Self::compile_here(document, limits))
                .map_err(|error| PolicyError::CompilerUnavailable(error.to_string()))?
                .join()
                .map_err(|_| {
                    PolicyError::CompilerUnavailable("the compiler thread failed".to_owned())
                })?
        })
    }

    fn compile_here(document: &PolicyDocument, limits: &PolicyLimits) -> Result<Self, PolicyError> {
        if document.rules.len() > limits.max_rules {
            return Err(PolicyError::TooManyRules {
                count: document.rules.len(),
                limit: limits.max_rules,
            });
        }
        let env = Arc::new(super::cost::environment());
        let shadow_set = document.mode == RuleMode::Shadow;
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        let (mut tool_patterns, mut prompt_patterns, mut resource_patterns) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut question_patterns = Vec::new();
        let mut server_patterns = Vec::new();
        let mut seen_ids = std::collections::HashSet::new();
        for (index, spec) in document.rules.iter().enumerate().filter(|(_, r)| r.enabled) {
            let id = spec
                .id
                .clone()
                .unwrap_or_else(|| format!("rule-{}", index + 1));
            let mut problems = Vec::new();
            for (field, text, limit) in [
                ("id", Some(id.as_str()), MAX_RULE_ID_CHARS),
                (
                    "description",
                    spec.description.as_deref(),
                    MAX_DESCRIPTION_CHARS,
                ),
            ] {
                let length = text.map_or(0, |t| t.chars().count());
                if length > limit {
                    problems.push(RuleProblem::TooLong {
                        field,
                        length,
                        limit,
                    });
                }
            }
            if !seen_ids.insert(id.clone()) {
                problems.push(RuleProblem::DuplicateId);
            }
            let names_others = !spec.prompts.is_empty()
                || !spec.resources.is_empty()
                || !spec.questions.is_empty();
            let tool_globs = match &spec.tools {
                Some(tools) => tools.clone(),
                None if names_others => Vec::new(),
                None => vec!["*".to_owned()],
            };
            if tool_globs.is_empty() && !names_others {
                problems.push(RuleProblem::NoTools);
            }
            let mut compile_patterns = |patterns: &[String]| -> Vec<NamePattern> {
                patterns
                    .iter()
                    .filter_map(|p| {
                        NamePattern::parse(p)
                            .map_err(|reason| {
                                problems.push(RuleProblem::Pattern {
                                    pattern: p.clone(),
                                    reason,
                                });
                            })
                            .ok()
                    })
                    .collect()
            };
            let tools = compile_patterns(&tool_globs);
            let prompts = compile_patterns(&spec.prompts);
            let resources = compile_patterns(&spec.resources);
            let questions = compile_patterns(&spec.questions);
            let servers = compile_patterns(&spec.servers);
            let principals = spec
                .principals
                .iter()
                .filter_map(|p| {
                    p.parse::<PrincipalSelector>()
                        .and_then(|selector| selector.require_key_id().map(|()| selector))
                        .map_err(|e| problems.push(RuleProblem::Principal(e)))
                        .ok()
                })
                .collect();
            let condition = spec.when.as_deref().and_then(|source| {
                Condition::compile(source, &env, limits)
                    .map_err(|e| problems.push(RuleProblem::Condition(e)))
                    .ok()
            });
            if !problems.is_empty() {
                errors.extend(problems.into_iter().map(|problem| RuleError {
                    rule_id: id.clone(),
                    position: index + 1,
                    problem,
                }));
                continue;
            }
            let effect = effect_of(
                spec.action,
                spec.message.as_deref(),
                spec.approval_policy.as_deref(),
                &id,
            );
            let mode = if shadow_set {
                RuleMode::Shadow
            } else {
                spec.mode
            };
            rules.push(CompiledRule {
                info: Arc::new(RuleInfo {
                    id,
                    index,
                    description: spec.description.clone(),
                    action: spec.action,
                    mode,
                    condition: condition.as_ref().map(|c| c.source().to_owned()),
                }),
                principals,
                condition,
                effect,
                shadow: mode == RuleMode::Shadow,
            });
            tool_patterns.push(tools);
            prompt_patterns.push(prompts);
            resource_patterns.push(resources);
            question_patterns.push(questions);
            server_patterns.push(servers);
        }
        if !errors.is_empty() {
            return Err(PolicyError::Rules(errors));
        }
        let default_effect = match document.default {
            ActionKind::Allow => Effect::Allow,
            ActionKind::Deny => Effect::Deny {
                message: document
                    .default_message
                    .as_deref()
                    .unwrap_or("denied by the default policy: no rule allows this tool call")
                    .into(),
            },
            ActionKind::RequireApproval => Effect::RequireApproval {
                approval_policy: None,
            },
        };
        Ok(Self {
            rules,
            default_effect,
            shadow_set,
            on_error: document.on_error,
            tools: RuleIndex::new(tool_patterns, server_patterns.clone()),
            prompts: RuleIndex::new(prompt_patterns, server_patterns.clone()),
            resources: RuleIndex::new(resource_patterns, server_patterns.clone()),
            questions: RuleIndex::new(question_patterns, server_patterns),
            env,
            budget: limits.evaluation_budget,
            document: document.clone(),
        })
    }

    /// The rules that can apply to `tool`, among those of its kind.
    fn candidates(&self, tool: &ToolDescriptor) -> Arc<Candidates> {
        match tool.kind {
            OperationKind::Tool => &self.tools,
            OperationKind::Prompt => &self.prompts,
            OperationKind::Resource => &self.resources,
            OperationKind::Question => &self.questions,
        }
        .candidates(tool)
    }

    /// The document this set was compiled from.
    pub fn document(&self) -> &PolicyDocument {
        &self.document
    }

    /// The approval policies the rules name (for validation against the defined ones).
    pub fn approval_policies_named(&self) -> impl Iterator<Item = (&RuleInfo, &str)> {
        self.rules.iter().filter_map(|rule| match &rule.effect {
            Effect::RequireApproval {
                approval_policy: Some(name),
            } => Some((&*rule.info, &**name)),
            _ => None,
        })
    }

    /// Whether deciding a call of `tool` may run a costly condition (one estimated above
    /// [`COSTLY_CONDITION`]): such decisions are bounded by the evaluation budget, but may still
    /// take milliseconds, so servers run them apart from their request threads.
    pub fn is_costly(&self, tool: &ToolDescriptor) -> bool {
        self.candidates(tool).rules.iter().any(|&index| {
            self.rules
                .get(index as usize)
                .and_then(|rule| rule.condition.as_ref())
                .is_some_and(|condition| condition.estimate() > COSTLY_CONDITION)
        })
    }

    /// Decides one call. Never fails: an evaluation error fails closed into the decision, and
    /// so does running out of the evaluation budget ([`PolicyLimits::evaluation_budget`]), which
    /// all of the call's conditions share.
    pub fn evaluate(&self, input: &EvaluationInput<'_>) -> Decision {
        super::cost::with_budget(self.budget, || self.evaluate_within_budget(input)).0
    }

    /// Decides one call if that takes at most `budget` units (a cheap decision, made where
    /// the call is); `None` if it would take more, to be made with [`PolicySet::evaluate`]
    /// somewhere a long decision holds nobody up.
    pub fn try_evaluate(&self, input: &EvaluationInput<'_>, budget: u64) -> Option<Decision> {
        let (decision, exhausted) = super::cost::with_budget(budget.min(self.budget), || {
            self.evaluate_within_budget(input)
        });
        (!exhausted).then_some(decision)
    }

    fn evaluate_within_budget(&self, input: &EvaluationInput<'_>) -> Decision {
        let candidates = self.candidates(input.tool);
        let activation = Activation::new(input, &candidates.tool_value);
        let mut shadow: Option<ShadowDecision> = None;
        for &index in candidates.rules.iter() {
            let Some(rule) = self.rules.get(index as usize) else {
                continue;
            };
            if !rule.principals.is_empty()
                && !rule.principals.iter().any(|s| s.matches(input.principal))
            {
                continue;
            }
            let outcome = match &rule.condition {
                None => Ok(true),
                Some(condition) => condition.evaluate(&self.env, &activation),
            };
            match (outcome, rule.shadow) {
                (Ok(false), _) => {}
                (Ok(true), false) => {
                    return Decision {
                        effect: rule.effect.clone(),
                        reason: Reason::Rule {
                            rule: Arc::clone(&rule.info),
                        },
                        shadow,
                        candidates: candidates.rules.len(),
                    };
                }
                (Err(error), false) => {
                    let error = error.to_string();
                    return Decision {
                        effect: self.error_effect(rule, &error),
                        reason: Reason::RuleError {
                            rule: Arc::clone(&rule.info),
                            error,
                        },
                        shadow,
                        candidates: candidates.rules.len(),
                    };
                }
                (outcome, true) => {
                    if shadow.is_none() {
                        let error = outcome.err().map(|e| e.to_string());
                        shadow = Some(ShadowDecision {
                            effect: match &error {
                                Some(e) => self.error_effect(rule, e),
                                None => rule.effect.clone(),
                            },
                            rule: Some(Arc::clone(&rule.info)),
                            error,
                        });
                    }
                }
            }
        }
        if self.shadow_set {
            let shadow = shadow.or_else(|| {
                Some(ShadowDecision {
                    effect: self.default_effect.clone(),
                    rule: None,
                    error: None,
                })
            });
            return Decision {
                effect: Effect::Allow,
                reason: Reason::ShadowSet,
                shadow: shadow.filter(|s| s.effect != Effect::Allow || s.rule.is_some()),
                candidates: candidates.rules.len(),
            };
        }
        Decision {
            effect: self.default_effect.clone(),
            reason: Reason::Default,
            shadow,
            candidates: candidates.rules.len(),
        }
    }

    /// Whether every call of `tool` by `principal` is denied whatever its arguments: the first
    /// enforced rule that can apply denies without a condition (or none applies and the default
    /// denies). Such tools are hidden from the principal's tool list.
    pub fn denies_unconditionally(&self, tool: &ToolDescriptor, principal: &Principal) -> bool {
        if self.shadow_set {
            return false;
        }
        let candidates = self.candidates(tool);
        for &index in candidates.rules.iter() {
            let Some(rule) = self.rules.get(index as usize) else {
                continue;
            };
            let applies =
                rule.principals.is_empty() || rule.principals.iter().any(|s| s.matches(principal));
            if rule.shadow || !applies {
                continue;
            }
            return rule.condition.is_none() && matches!(rule.effect, Effect::Deny { .. });
        }
        matches!(self.default_effect, Effect::Deny { .. })
    }

    fn error_effect(&self, rule: &CompiledRule, error: &str) -> Effect {
        match self.on_error {
            OnError::Deny => Effect::Deny {
                message: format!(
                    "denied: policy rule `{}` could not be evaluated ({error}); errors fail closed",
                    rule.info.id
                )
                .into(),
            },
            OnError::RequireApproval => Effect::RequireApproval {
                approval_policy: match &rule.effect {
                    Effect::RequireApproval { approval_policy } => approval_policy.clone(),
                    _ => None,
                },
            },
        }
    }
}

fn effect_of(
    action: ActionKind,
    message: Option<&str>,
    approval_policy: Option<&str>,
    id: &str,
) -> Effect {
    match action {
        ActionKind::Allow => Effect::Allow,
        ActionKind::Deny => Effect::Deny {
            message: message
                .map_or_else(|| format!("denied by policy rule `{id}`"), str::to_owned)
                .into(),
        },
        ActionKind::RequireApproval => Effect::RequireApproval {
            approval_policy: approval_policy.map(Into::into),
        },
    }
}

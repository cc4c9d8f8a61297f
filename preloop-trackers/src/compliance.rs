//! Definition of Ready: a deterministic, documented rubric that scores how ready an issue is to
//! be worked on, criterion by criterion, each in [0, 1], with concrete suggestions.
//!
//! | criterion | full marks when |
//! |---|---|
//! | `clear_title` | 3 to 15 words, 10 to 120 characters, not shouting, not a bare "bug"/"fix"/"issue" |
//! | `description` | the body gives context: at least 200 characters (half marks from 60) |
//! | `acceptance_criteria` | an "Acceptance criteria" section, a checklist (`- [ ]`), or Given/When/Then |
//! | `reproduction_steps` | bugs only: steps (numbered, or a "Steps to reproduce" section) plus expected and actual behaviour |
//! | `labels_and_priority` | at least one label (half) and a priority (half) |
//! | `precise_language` | no vague words ("asap", "somehow", "stuff", "etc", "tbd", ...); a quarter off per word |
//!
//! An issue is a bug when a label says so (`bug`, `defect`, `type: bug`, `kind/bug`...) or its
//! title speaks of one (crash, error, fails, broken, bug). The overall score is the mean of the
//! criteria that apply; an issue is ready at 0.8 or more with no criterion at zero.
//! Model-backed metrics come later; this one needs no model and gives the same answer every time.

use preloop_core::tracker::Issue;
use serde::Serialize;

/// The metric names [`Metric::parse`] accepts.
pub const METRICS: &[&str] = &["DoR"];

/// A compliance metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Metric {
    /// Definition of Ready.
    #[serde(rename = "DoR")]
    DefinitionOfReady,
}

impl Metric {
    /// The metric a name means (`DoR`, `definition of ready`, any case).
    pub fn parse(name: &str) -> Option<Self> {
        match name
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_'], " ")
            .as_str()
        {
            "dor" | "definition of ready" => Some(Self::DefinitionOfReady),
            _ => None,
        }
    }
}

/// Overall score at or above which an issue is ready (with no criterion at zero).
pub const READY_AT: f64 = 0.8;

/// One criterion's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Criterion {
    /// Criterion name (`clear_title`, ...).
    pub name: &'static str,
    /// Score in [0, 1].
    pub score: f64,
    /// What was found.
    pub finding: String,
    /// What to do for full marks; `None` at full marks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

/// An issue's assessment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// The metric.
    pub metric: Metric,
    /// Mean of the applicable criteria, in [0, 1].
    pub score: f64,
    /// Whether the issue is ready.
    pub ready: bool,
    /// Whether the issue was judged a bug (so reproduction steps apply).
    pub is_bug: bool,
    /// The applicable criteria.
    pub criteria: Vec<Criterion>,
}

impl Assessment {
    /// The suggestions of every criterion short of full marks.
    pub fn suggestions(&self) -> Vec<&str> {
        self.criteria
            .iter()
            .filter_map(|c| c.suggestion.as_deref())
            .collect()
    }
}

const VAGUE_WORDS: &[&str] = &[
    "asap",
    "somehow",
    "something",
    "stuff",
    "things",
    "etc",
    "tbd",
    "maybe",
    "probably",
    "various",
    "soon",
    "whatever",
    "nicer",
    "better",
    "improve",
    "fast",
    "easy",
    "user-friendly",
];

const BARE_TITLES: &[&str] = &[
    "bug", "fix", "issue", "problem", "help", "todo", "update", "change",
];

/// Scores `issue` against `metric`.
pub fn assess(issue: &Issue, metric: Metric) -> Assessment {
    match metric {
        Metric::DefinitionOfReady => definition_of_ready(issue),
    }
}

fn definition_of_ready(issue: &Issue) -> Assessment {
    let body = issue.body.to_lowercase();
    let is_bug = is_bug(issue);
    let mut criteria = vec![
        clear_title(&issue.title),
        description(&issue.body),
        acceptance_criteria(&body),
    ];
    if is_bug {
        criteria.push(reproduction_steps(&issue.body, &body));
    }
    criteria.push(labels_and_priority(issue));
    criteria.push(precise_language(&issue.title, &body));
    let score = criteria.iter().map(|c| c.score).sum::<f64>() / criteria.len() as f64;
    let ready = score >= READY_AT && criteria.iter().all(|c| c.score > 0.0);
    Assessment {
        metric: Metric::DefinitionOfReady,
        score: round(score),
        ready,
        is_bug,
        criteria,
    }
}

fn round(score: f64) -> f64 {
    (score * 100.0).round() / 100.0
}

fn criterion(name: &'static str, score: f64, finding: String, suggestion: &str) -> Criterion {
    Criterion {
        name,
        score: round(score.clamp(0.0, 1.0)),
        finding,
        suggestion: (score < 1.0).then(|| suggestion.to_owned()),
    }
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '-')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn is_bug(issue: &Issue) -> bool {
    let labelled = issue.labels.iter().any(|label| {
        let label = label.to_lowercase();
        words(&label).iter().any(|w| w == "bug" || w == "defect")
    });
    let title = words(&issue.title);
    let spoken = title.iter().any(|w| {
        matches!(
            w.as_str(),
            "bug" | "crash" | "crashes" | "error" | "errors" | "fails" | "failing" | "broken"
        )
    });
    labelled || spoken
}

fn clear_title(title: &str) -> Criterion {
    let title = title.trim();
    let count = words(title).len();
    let chars = title.chars().count();
    let letters: Vec<char> = title.chars().filter(|c| c.is_alphabetic()).collect();
    let shouting = letters.len() > 3 && letters.iter().all(|c| c.is_uppercase());
    let bare = BARE_TITLES.contains(&title.to_lowercase().trim_end_matches(['.', '!']));
    let mut score: f64 = 1.0;
    let mut problems = Vec::new();
    if bare || count < 3 {
        score -= 0.6;
        problems.push(format!("{count} word(s)"));
    } else if count > 15 {
        score -= 0.3;
        problems.push(format!("{count} words"));
    }
    if !(10..=120).contains(&chars) {
        score -= 0.2;
        problems.push(format!("{chars} characters"));
    }
    if shouting {
        score -= 0.2;
        problems.push("all capitals".to_owned());
    }
    let finding = if problems.is_empty() {
        format!("\"{title}\" says what the issue is about")
    } else {
        format!("the title has {}", problems.join(", "))
    };
    criterion(
        "clear_title",
        score,
        finding,
        "Write a title of 3 to 15 words that names the component and the change or the failure, e.g. \"Login page rejects valid SSO tokens after refresh\".",
    )
}

fn description(body: &str) -> Criterion {
    let length = body.trim().chars().count();
    let score = if length >= 200 {
        1.0
    } else if length >= 60 {
        0.5
    } else {
        0.0
    };
    criterion(
        "description",
        score,
        format!("the description has {length} characters"),
        "Describe the context: who is affected, what happens today, why it matters and any constraints (at least a few sentences).",
    )
}

fn acceptance_criteria(body: &str) -> Criterion {
    let has_section = body.contains("acceptance criteria") || body.contains("definition of done");
    let has_checklist = body.contains("- [ ]") || body.contains("* [ ]") || body.contains("- [x]");
    let has_gherkin = body.contains("given ") && body.contains("when ") && body.contains("then ");
    let found = has_section || has_checklist || has_gherkin;
    criterion(
        "acceptance_criteria",
        if found { 1.0 } else { 0.0 },
        if found {
            "the issue states acceptance criteria".to_owned()
        } else {
            "no acceptance criteria found".to_owned()
        },
        "Add an \"Acceptance criteria\" section with a checklist (\"- [ ] ...\") of verifiable outcomes, or Given/When/Then scenarios.",
    )
}

fn reproduction_steps(original: &str, body: &str) -> Criterion {
    let numbered = original
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            line.split_once(['.', ')'])
                .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
        .count();
    let has_steps = body.contains("steps to reproduce") || body.contains("repro") || numbered >= 2;
    let has_expected = body.contains("expected");
    let has_actual = body.contains("actual") || body.contains("instead");
    let score = [has_steps, has_expected, has_actual]
        .iter()
        .filter(|found| **found)
        .count() as f64
        / 3.0;
    let missing: Vec<&str> = [
        (has_steps, "steps"),
        (has_expected, "expected behaviour"),
        (has_actual, "actual behaviour"),
    ]
    .iter()
    .filter(|(found, _)| !found)
    .map(|(_, what)| *what)
    .collect();
    criterion(
        "reproduction_steps",
        score,
        if missing.is_empty() {
            "steps, expected and actual behaviour are given".to_owned()
        } else {
            format!("missing: {}", missing.join(", "))
        },
        "For a bug, add \"Steps to reproduce\" as a numbered list, then \"Expected\" and \"Actual\" behaviour (with versions and error messages).",
    )
}

fn labels_and_priority(issue: &Issue) -> Criterion {
    let labelled = !issue.labels.is_empty();
    let prioritized = issue
        .priority
        .as_deref()
        .is_some_and(|p| !p.trim().is_empty());
    let score = f64::from(u8::from(labelled)) * 0.5 + f64::from(u8::from(prioritized)) * 0.5;
    criterion(
        "labels_and_priority",
        score,
        format!(
            "{} label(s), priority {}",
            issue.labels.len(),
            issue.priority.as_deref().unwrap_or("not set")
        ),
        "Label the issue (type, component) and set its priority so it can be triaged.",
    )
}

fn precise_language(title: &str, body: &str) -> Criterion {
    let mut text = words(title);
    text.extend(words(body));
    let mut found: Vec<&str> = VAGUE_WORDS
        .iter()
        .copied()
        .filter(|vague| text.iter().any(|w| w == vague))
        .collect();
    found.dedup();
    let score = 1.0 - 0.25 * found.len() as f64;
    criterion(
        "precise_language",
        score,
        if found.is_empty() {
            "no vague words".to_owned()
        } else {
            format!("vague words: {}", found.join(", "))
        },
        "Replace vague words with specifics: numbers, names, dates and observable behaviour.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use preloop_core::tracker::IssueState;

    fn issue(title: &str, body: &str, labels: &[&str], priority: Option<&str>) -> Issue {
        Issue {
            id: "1".into(),
            key: "o/r#1".into(),
            project: "o/r".into(),
            title: title.into(),
            body: body.into(),
            state: IssueState::Open,
            status: None,
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            assignees: vec![],
            author: None,
            priority: priority.map(str::to_owned),
            url: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    const READY_BUG: &str = "Since 2.3 the login page rejects SSO tokens that were refreshed \
        less than a minute ago. All users of the Okta integration are affected and have to sign \
        in twice, which support hears about daily.\n\nSteps to reproduce:\n1. Sign in with Okta\n\
        2. Wait for the token refresh\n3. Reload the page\n\nExpected: the session continues.\n\
        Actual: a 401 and the sign-in page.\n\nAcceptance criteria:\n- [ ] refreshed tokens are \
        accepted\n- [ ] a regression test covers the refresh";

    #[test]
    fn a_complete_bug_report_is_ready() {
        let report = assess(
            &issue(
                "Login page rejects refreshed SSO tokens",
                READY_BUG,
                &["bug"],
                Some("High"),
            ),
            Metric::DefinitionOfReady,
        );
        assert!(report.is_bug);
        assert_eq!(report.score, 1.0, "{report:#?}");
        assert!(report.ready);
        assert!(report.suggestions().is_empty());
    }

    #[test]
    fn a_vague_one_liner_scores_low_with_a_suggestion_per_gap() {
        let report = assess(
            &issue("fix", "make it better asap", &[], None),
            Metric::DefinitionOfReady,
        );
        assert!(!report.ready);
        assert!(report.score < 0.3, "{report:#?}");
        let names: Vec<&str> = report
            .criteria
            .iter()
            .filter(|c| c.suggestion.is_some())
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [
                "clear_title",
                "description",
                "acceptance_criteria",
                "labels_and_priority",
                "precise_language"
            ]
        );
        let vague = report
            .criteria
            .iter()
            .find(|c| c.name == "precise_language");
        assert_eq!(vague.map(|c| c.score), Some(0.5));
    }

    #[test]
    fn reproduction_steps_apply_only_to_bugs() {
        let feature = assess(
            &issue(
                "Export audit events as CSV files",
                READY_BUG,
                &["feature"],
                Some("Low"),
            ),
            Metric::DefinitionOfReady,
        );
        assert!(!feature.is_bug);
        assert!(
            feature
                .criteria
                .iter()
                .all(|c| c.name != "reproduction_steps")
        );
        let crash = assess(
            &issue("Exporter crashes on empty input", "It crashes.", &[], None),
            Metric::DefinitionOfReady,
        );
        assert!(crash.is_bug);
        let steps = crash
            .criteria
            .iter()
            .find(|c| c.name == "reproduction_steps");
        assert_eq!(steps.map(|c| c.score), Some(0.0));
    }

    #[test]
    fn the_same_issue_always_gets_the_same_score() {
        let a = issue(
            "Add SAML sign-in for enterprise tenants",
            "Some context.",
            &["auth"],
            None,
        );
        assert_eq!(
            assess(&a, Metric::DefinitionOfReady),
            assess(&a, Metric::DefinitionOfReady)
        );
    }

    #[test]
    fn metrics_are_named_as_the_original_product_names_them() {
        assert_eq!(Metric::parse("DoR"), Some(Metric::DefinitionOfReady));
        assert_eq!(
            Metric::parse("definition-of-ready"),
            Some(Metric::DefinitionOfReady)
        );
        assert_eq!(Metric::parse("INVEST"), None);
    }
}

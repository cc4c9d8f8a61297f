//! How the tools answer: readable text for the agent's context, and the same facts as
//! structured content.

use crate::compliance::{Assessment, Criterion};
use preloop_core::executor::ToolOutput;
use preloop_core::store::IssueHit;
use preloop_core::tracker::{Issue, IssueComment};
use serde_json::{Value, json};

/// A result with `text` for reading and `structured` for programs.
pub fn output(text: String, structured: Value) -> ToolOutput {
    ToolOutput {
        content: vec![json!({"type": "text", "text": text})],
        structured_content: Some(structured),
        is_error: false,
        protocol: None,
    }
}

/// An issue as structured content: the issue's fields plus its store id and tracker name.
pub fn issue_value(issue: &Issue, id: Option<&str>, tracker: &str) -> Value {
    let mut value = serde_json::to_value(issue).unwrap_or_default();
    if let Value::Object(map) = &mut value {
        map.insert("tracker".to_owned(), json!(tracker));
        if let Some(id) = id {
            map.insert("store_id".to_owned(), json!(id));
        }
    }
    value
}

/// The issue's one-line heading: `KEY [state · status] title`.
fn heading(issue: &Issue) -> String {
    let status = issue
        .status
        .as_deref()
        .map(|s| format!(" · {s}"))
        .unwrap_or_default();
    format!(
        "{} [{}{status}] {}",
        issue.key,
        issue.state.as_str(),
        issue.title
    )
}

/// An issue in full.
pub fn issue_text(issue: &Issue, note: Option<&str>) -> String {
    let mut lines = vec![heading(issue)];
    if let Some(url) = &issue.url {
        lines.push(url.clone());
    }
    let list = |items: &[String]| {
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    lines.push(format!(
        "Labels: {} · Assignees: {} · Priority: {} · Author: {}",
        list(&issue.labels),
        list(&issue.assignees),
        issue.priority.as_deref().unwrap_or("none"),
        issue.author.as_deref().unwrap_or("unknown"),
    ));
    lines.push(format!(
        "Created {} · updated {}",
        issue.created_at.to_rfc3339(),
        issue.updated_at.to_rfc3339()
    ));
    if let Some(note) = note {
        lines.push(format!("({note})"));
    }
    lines.push(String::new());
    lines.push(if issue.body.trim().is_empty() {
        "(no description)".to_owned()
    } else {
        issue.body.clone()
    });
    lines.join("\n")
}

/// Search hits, best first.
pub fn hits(query: &str, hits: &[IssueHit], tracker_name: impl Fn(&str) -> String) -> ToolOutput {
    let text = if hits.is_empty() {
        format!("No issues match {query:?}.")
    } else {
        let mut lines = vec![format!("{} issue(s) match {query:?}:", hits.len())];
        lines.extend(hits.iter().enumerate().map(|(i, hit)| {
            let issue = &hit.stored.issue;
            let url = issue
                .url
                .as_deref()
                .map(|u| format!(" — {u}"))
                .unwrap_or_default();
            format!("{}. {}{url} (id {})", i + 1, heading(issue), hit.stored.id)
        }));
        lines.join("\n")
    };
    let results: Vec<Value> = hits
        .iter()
        .map(|hit| {
            let mut value = issue_value(
                &hit.stored.issue,
                Some(&hit.stored.id),
                &tracker_name(&hit.stored.tracker_id),
            );
            if let Value::Object(map) = &mut value {
                map.insert("score".to_owned(), json!(hit.score));
            }
            value
        })
        .collect();
    output(text, json!({"query": query, "results": results}))
}

/// A comment that was added.
pub fn comment(key: &str, comment: &IssueComment) -> ToolOutput {
    output(
        format!("Comment {} added to {key}.", comment.id),
        json!({"issue": key, "comment": comment}),
    )
}

fn criterion_line(criterion: &Criterion) -> String {
    format!(
        "- {}: {:.2} — {}",
        criterion.name, criterion.score, criterion.finding
    )
}

/// Compliance assessments; with `suggest`, each gap's suggestion too.
pub fn assessments(assessed: &[(Issue, Assessment)], suggest: bool) -> ToolOutput {
    let mut lines = Vec::new();
    for (issue, assessment) in assessed {
        lines.push(format!(
            "{} — {}: {:.2} ({})",
            issue.key,
            serde_json::to_value(assessment.metric)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            assessment.score,
            if assessment.ready {
                "ready"
            } else {
                "not ready"
            }
        ));
        lines.extend(assessment.criteria.iter().map(criterion_line));
        if suggest {
            let suggestions = assessment.suggestions();
            if suggestions.is_empty() {
                lines.push("Nothing to improve.".to_owned());
            } else {
                lines.push("To improve:".to_owned());
                lines.extend(suggestions.iter().map(|s| format!("  * {s}")));
            }
        }
        lines.push(String::new());
    }
    let results: Vec<Value> = assessed
        .iter()
        .map(|(issue, assessment)| {
            let mut value = serde_json::to_value(assessment).unwrap_or_default();
            if let Value::Object(map) = &mut value {
                map.insert("issue".to_owned(), json!(issue.key));
                map.insert("title".to_owned(), json!(issue.title));
                if suggest {
                    map.insert("suggestions".to_owned(), json!(assessment.suggestions()));
                }
            }
            value
        })
        .collect();
    output(
        lines.join("\n").trim_end().to_owned(),
        json!({"results": results}),
    )
}

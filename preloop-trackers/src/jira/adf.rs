//! Atlassian Document Format (Jira Cloud's rich text) to plain text and back.
//!
//! To text: paragraphs separated by blank lines, headings as `#` lines, bullet and ordered
//! lists as `- ` / `1. ` lines (nested ones indented), code blocks fenced, hard breaks as
//! newlines, mentions as `@name`, cards and links as their URL, emoji as their text, tables
//! row by row with cells separated by ` | `; any other node gives its text content.
//!
//! From text: blank lines separate paragraphs, single newlines become hard breaks, fenced code
//! blocks become code blocks and runs of `- ` lines become bullet lists.

use serde_json::{Value, json};

/// Node types that hold blocks (so their children are separated by blank lines).
const BLOCK_TYPES: &[&str] = &[
    "paragraph",
    "heading",
    "bulletList",
    "orderedList",
    "codeBlock",
    "blockquote",
    "rule",
    "table",
    "panel",
    "expand",
    "nestedExpand",
    "mediaSingle",
    "mediaGroup",
    "decisionList",
    "taskList",
    "layoutSection",
    "blockCard",
    "embedCard",
];

/// The plain text of an ADF document (or of any ADF node).
pub fn to_text(node: &Value) -> String {
    let kind = node.get("type").and_then(Value::as_str).unwrap_or_default();
    let attrs = node.get("attrs");
    let attr = |name: &str| {
        attrs
            .and_then(|a| a.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    match kind {
        "doc" => blocks(node, "\n\n"),
        "paragraph" => inlines(node),
        "heading" => {
            let level = attrs
                .and_then(|a| a.get("level"))
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .clamp(1, 6);
            format!(
                "{} {}",
                "#".repeat(usize::try_from(level).unwrap_or(1)),
                inlines(node)
            )
        }
        "bulletList" => list(node, None),
        "orderedList" => {
            let start = attrs
                .and_then(|a| a.get("order"))
                .and_then(Value::as_u64)
                .unwrap_or(1);
            list(node, Some(start))
        }
        "listItem" => blocks(node, "\n"),
        "codeBlock" => {
            let language = attr("language");
            format!("```{language}\n{}\n```", inlines(node))
        }
        "blockquote" => blocks(node, "\n\n")
            .lines()
            .map(|line| format!("> {line}").trim_end().to_owned())
            .collect::<Vec<_>>()
            .join("\n"),
        "rule" => "---".to_owned(),
        "table" => blocks(node, "\n"),
        "tableRow" => children(node)
            .iter()
            .map(to_text)
            .collect::<Vec<_>>()
            .join(" | "),
        "tableCell" | "tableHeader" => blocks(node, " "),
        "text" => text(node),
        "hardBreak" => "\n".to_owned(),
        "mention" => format!("@{}", attr("text").trim_start_matches('@')),
        "emoji" => match attr("text") {
            "" => attr("shortName").to_owned(),
            text => text.to_owned(),
        },
        "inlineCard" | "blockCard" | "embedCard" => attr("url").to_owned(),
        "status" => attr("text").to_owned(),
        _ if children(node).iter().any(is_block) => blocks(node, "\n\n"),
        _ => inlines(node),
    }
}

/// An ADF document of plain text: blank lines separate paragraphs, single newlines are hard
/// breaks, fenced code blocks are code blocks, runs of `- ` lines are bullet lists.
pub fn from_text(text: &str) -> Value {
    let mut content = Vec::new();
    let mut paragraph: Vec<&str> = Vec::new();
    let mut bullets: Vec<&str> = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(language) = line.trim_start().strip_prefix("```") {
            flush(&mut content, &mut paragraph, &mut bullets);
            let mut code = Vec::new();
            for line in lines.by_ref() {
                if line.trim_start().starts_with("```") {
                    break;
                }
                code.push(line);
            }
            content.push(code_block(language.trim(), &code.join("\n")));
        } else if line.trim().is_empty() {
            flush(&mut content, &mut paragraph, &mut bullets);
        } else if let Some(item) = line.strip_prefix("- ") {
            if !paragraph.is_empty() {
                content.push(paragraph_of(&paragraph));
                paragraph.clear();
            }
            bullets.push(item);
        } else {
            if !bullets.is_empty() {
                content.push(bullet_list(&bullets));
                bullets.clear();
            }
            paragraph.push(line);
        }
    }
    flush(&mut content, &mut paragraph, &mut bullets);
    json!({"type": "doc", "version": 1, "content": content})
}

fn children(node: &Value) -> &[Value] {
    node.get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn is_block(node: &Value) -> bool {
    node.get("type")
        .and_then(Value::as_str)
        .is_some_and(|kind| BLOCK_TYPES.contains(&kind))
}

fn blocks(node: &Value, separator: &str) -> String {
    children(node)
        .iter()
        .map(to_text)
        .filter(|text| !text.is_empty())
        .collect::<Vec<_>>()
        .join(separator)
}

fn inlines(node: &Value) -> String {
    children(node).iter().map(to_text).collect()
}

/// A text node, with a link's URL after it when the text is not the URL itself.
fn text(node: &Value) -> String {
    let text = node.get("text").and_then(Value::as_str).unwrap_or_default();
    let href = node
        .get("marks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|mark| mark.get("type").and_then(Value::as_str) == Some("link"))
        .find_map(|mark| mark.pointer("/attrs/href").and_then(Value::as_str));
    match href {
        Some(href) if href != text && !text.is_empty() => format!("{text} ({href})"),
        Some(href) if text.is_empty() => href.to_owned(),
        _ => text.to_owned(),
    }
}

/// `- item` / `1. item` lines, continuation lines (nested lists) indented by two spaces.
fn list(node: &Value, start: Option<u64>) -> String {
    children(node)
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let marker = match start {
                Some(start) => format!("{}. ", start + index as u64),
                None => "- ".to_owned(),
            };
            let body = to_text(item);
            let mut lines = body.lines();
            let first = lines.next().unwrap_or_default();
            std::iter::once(format!("{marker}{first}"))
                .chain(lines.map(|line| format!("  {line}")))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn flush<'a>(content: &mut Vec<Value>, paragraph: &mut Vec<&'a str>, bullets: &mut Vec<&'a str>) {
    if !paragraph.is_empty() {
        content.push(paragraph_of(paragraph));
        paragraph.clear();
    }
    if !bullets.is_empty() {
        content.push(bullet_list(bullets));
        bullets.clear();
    }
}

/// A paragraph of lines joined by hard breaks (ADF text nodes must not be empty).
fn inline_lines(lines: &[&str]) -> Vec<Value> {
    let mut content = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if index > 0 {
            content.push(json!({"type": "hardBreak"}));
        }
        if !line.is_empty() {
            content.push(json!({"type": "text", "text": line}));
        }
    }
    content
}

fn paragraph_of(lines: &[&str]) -> Value {
    json!({"type": "paragraph", "content": inline_lines(lines)})
}

fn bullet_list(items: &[&str]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|item| json!({"type": "listItem", "content": [paragraph_of(&[item])]}))
        .collect();
    json!({"type": "bulletList", "content": items})
}

fn code_block(language: &str, code: &str) -> Value {
    let content = if code.is_empty() {
        json!([])
    } else {
        json!([{"type": "text", "text": code}])
    };
    if language.is_empty() {
        json!({"type": "codeBlock", "content": content})
    } else {
        json!({"type": "codeBlock", "attrs": {"language": language}, "content": content})
    }
}

#[cfg(test)]
mod tests {
    //! The documents are the examples of Atlassian's ADF reference
    //! (developer.atlassian.com/cloud/jira/platform/apis/document/nodes/...).

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn doc(content: Value) -> Value {
        json!({"version": 1, "type": "doc", "content": content})
    }

    #[test]
    fn paragraphs_marks_and_hard_breaks_read_as_text() {
        let document = doc(json!([
            {"type": "paragraph", "content": [
                {"type": "text", "text": "Hello "},
                {"type": "text", "text": "world", "marks": [{"type": "strong"}]}
            ]},
            {"type": "paragraph", "content": [
                {"type": "text", "text": "Hello"},
                {"type": "hardBreak"},
                {"type": "text", "text": "world"}
            ]}
        ]));
        assert_eq!(to_text(&document), "Hello world\n\nHello\nworld");
    }

    #[test]
    fn headings_lists_and_code_read_as_text() {
        let document = doc(json!([
            {"type": "heading", "attrs": {"level": 1}, "content": [{"type": "text", "text": "Heading 1"}]},
            {"type": "bulletList", "content": [
                {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Hello world"}]}]},
                {"type": "listItem", "content": [
                    {"type": "paragraph", "content": [{"type": "text", "text": "Nested"}]},
                    {"type": "orderedList", "attrs": {"order": 3}, "content": [
                        {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Three"}]}]}
                    ]}
                ]}
            ]},
            {"type": "orderedList", "attrs": {"order": 3}, "content": [
                {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Hello world"}]}]}
            ]},
            {"type": "codeBlock", "attrs": {"language": "javascript"}, "content": [
                {"type": "text", "text": "var foo = {};\nvar bar = [];"}
            ]}
        ]));
        assert_eq!(
            to_text(&document),
            "# Heading 1\n\n- Hello world\n- Nested\n  3. Three\n\n3. Hello world\n\n\
             ```javascript\nvar foo = {};\nvar bar = [];\n```"
        );
    }

    #[test]
    fn inline_nodes_read_as_their_text() {
        let document = doc(json!([
            {"type": "paragraph", "content": [
                {"type": "mention", "attrs": {"id": "ABCDE-ABCDE-ABCDE-ABCDE", "text": "@Bradley Ayers", "userType": "APP"}},
                {"type": "text", "text": " "},
                {"type": "emoji", "attrs": {"shortName": ":grinning:", "text": "😀"}},
                {"type": "text", "text": " "},
                {"type": "inlineCard", "attrs": {"url": "https://atlassian.com"}},
                {"type": "text", "text": " "},
                {"type": "text", "text": "Hello world", "marks": [{"type": "link", "attrs": {"href": "http://atlassian.com", "title": "Atlassian"}}]},
                {"type": "text", "text": " "},
                {"type": "status", "attrs": {"localId": "abcdef12-abcd-abcd-abcd-abcdef123456", "text": "In Progress", "color": "yellow"}}
            ]},
            {"type": "panel", "attrs": {"panelType": "info"}, "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "Hello world"}]}
            ]},
            {"type": "rule"}
        ]));
        assert_eq!(
            to_text(&document),
            "@Bradley Ayers 😀 https://atlassian.com Hello world (http://atlassian.com) In Progress\n\n\
             Hello world\n\n---"
        );
    }

    #[test]
    fn tables_read_row_by_row() {
        let cell = |kind: &str, text: &str| {
            json!({"type": kind, "attrs": {}, "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": text}]}
            ]})
        };
        let document = doc(json!([{
            "type": "table",
            "attrs": {"isNumberColumnEnabled": false, "layout": "center", "width": 900, "displayMode": "default"},
            "content": [
                {"type": "tableRow", "content": [cell("tableHeader", "Row one, cell one"), cell("tableHeader", "Row one, cell two")]},
                {"type": "tableRow", "content": [cell("tableCell", "Row two, cell one"), cell("tableCell", "Row two, cell two")]}
            ]
        }]));
        assert_eq!(
            to_text(&document),
            "Row one, cell one | Row one, cell two\nRow two, cell one | Row two, cell two"
        );
    }

    #[test]
    fn text_becomes_paragraphs_breaks_code_and_bullets() -> TestResult {
        let text =
            "First line\nsecond line\n\n- one\n- two\n\n```rust\nlet x = 1;\n\nx\n```\nAfter";
        let document = from_text(text);
        let expected = doc(json!([
            {"type": "paragraph", "content": [
                {"type": "text", "text": "First line"},
                {"type": "hardBreak"},
                {"type": "text", "text": "second line"}
            ]},
            {"type": "bulletList", "content": [
                {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "one"}]}]},
                {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "two"}]}]}
            ]},
            {"type": "codeBlock", "attrs": {"language": "rust"}, "content": [{"type": "text", "text": "let x = 1;\n\nx"}]},
            {"type": "paragraph", "content": [{"type": "text", "text": "After"}]}
        ]));
        assert_eq!(document, expected);
        assert_eq!(
            to_text(&document),
            "First line\nsecond line\n\n- one\n- two\n\n```rust\nlet x = 1;\n\nx\n```\n\nAfter"
        );
        Ok(())
    }

    #[test]
    fn empty_text_is_an_empty_document() {
        assert_eq!(from_text(""), doc(json!([])));
        assert_eq!(to_text(&from_text("")), "");
    }
}

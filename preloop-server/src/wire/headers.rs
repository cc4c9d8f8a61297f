//! The HTTP headers a 2026-07-28 request mirrors from its body (SEP-2243): `Mcp-Method`,
//! `Mcp-Name` (a tool's or prompt's name, a resource's URI, a task's id) and one
//! `Mcp-Param-{Name}` per tool argument whose schema property carries `x-mcp-header`, so
//! intermediaries can route without reading the body. Servers refuse a request whose headers
//! do not match its body, so the gateway writes them again from the body it actually sends
//! (its names are not always the client's).
//!
//! rmcp writes the same headers for its own client, but not as a public API.

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

/// What a value is wrapped in when it cannot travel as a plain header value.
const BASE64_PREFIX: &str = "=?base64?";
/// See [`BASE64_PREFIX`].
const BASE64_SUFFIX: &str = "?=";

/// The headers mirroring request `method` with `params`; `schema` is the called tool's input
/// schema (for `Mcp-Param-*`), when the request is a `tools/call`.
pub fn mirrored(
    method: &str,
    params: &Value,
    schema: Option<&Map<String, Value>>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::new();
    let mut push = |name: &str, value: &str| {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.push((name, value));
        }
    };
    push("mcp-method", method);
    let name_field = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
        "tasks/get" | "tasks/update" | "tasks/cancel" => Some("taskId"),
        _ => None,
    };
    if let Some(name) = name_field
        .and_then(|field| params.get(field))
        .and_then(Value::as_str)
    {
        push("mcp-name", &encoded(name));
    }
    if method == "tools/call"
        && let (Some(schema), Some(arguments)) = (schema, params.get("arguments"))
    {
        let mut path = Vec::new();
        for (header, value) in annotated(schema.get("properties"), arguments, &mut path) {
            push(&format!("mcp-param-{header}"), &encoded(&value));
        }
    }
    headers
}

/// Every `(header, value)` of an `x-mcp-header` property reached from the schema's root
/// through `properties` alone, whose argument is present as a string, integer or boolean.
fn annotated<'a>(
    properties: Option<&'a Value>,
    arguments: &Value,
    path: &mut Vec<&'a str>,
) -> Vec<(&'a str, String)> {
    let Some(Value::Object(properties)) = properties else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (name, property) in properties {
        path.push(name);
        let value = path
            .iter()
            .try_fold(arguments, |value, key| value.get(*key));
        if let (Some(Value::String(header)), Some(value)) = (property.get("x-mcp-header"), value)
            && !header.is_empty()
            && let Some(text) = primitive(value)
        {
            found.push((header.as_str(), text));
        }
        found.extend(annotated(property.get("properties"), arguments, path));
        path.pop();
    }
    found
}

/// A header's text for a JSON string, integer or boolean (`None` for anything else, which a
/// header does not carry).
fn primitive(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) if number.is_i64() || number.is_u64() => Some(number.to_string()),
        _ => None,
    }
}

/// `value` as a header value: as it is when it is visible ASCII without surrounding blanks,
/// else (or when it looks like the wrapping itself) `=?base64?{base64 of its UTF-8}?=`.
fn encoded(value: &str) -> String {
    let blank = |c: Option<char>| matches!(c, Some(' ' | '\t'));
    let needs_wrapping = blank(value.chars().next())
        || blank(value.chars().last())
        || value.chars().any(|c| !(' '..='~').contains(&c))
        || (value.starts_with(BASE64_PREFIX) && value.ends_with(BASE64_SUFFIX));
    if !needs_wrapping {
        value.to_owned()
    } else {
        format!(
            "{BASE64_PREFIX}{}{BASE64_SUFFIX}",
            BASE64_STANDARD.encode(value)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(method: &str, params: &Value, schema: Option<&Value>) -> Vec<(String, String)> {
        mirrored(method, params, schema.and_then(Value::as_object))
            .into_iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn method_and_name_mirror_the_body() {
        let call = json!({"name": "lookup", "arguments": {}});
        assert_eq!(
            headers("tools/call", &call, None),
            [
                ("mcp-method".to_owned(), "tools/call".to_owned()),
                ("mcp-name".to_owned(), "lookup".to_owned())
            ]
        );
        let read = json!({"uri": "test://static-text"});
        assert_eq!(
            headers("resources/read", &read, None)[1].1,
            "test://static-text"
        );
        assert_eq!(headers("tools/list", &json!({}), None).len(), 1);
    }

    #[test]
    fn annotated_arguments_become_param_headers_encoded_when_they_must_be() {
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "count": {"type": "integer", "x-mcp-header": "Count"},
            "ratio": {"type": "number", "x-mcp-header": "Ratio"},
            "options": {"type": "object", "properties": {
                "tenant": {"type": "string", "x-mcp-header": "Tenant"}}},
            "note": {"type": "string"}
        }});
        let call = json!({"name": "t", "arguments": {
            "region": " ünïcode ", "count": 3, "ratio": 0.5,
            "options": {"tenant": "acme"}, "note": "not mirrored"
        }});
        let found = headers("tools/call", &call, Some(&schema));
        let param = |name: &str| {
            found
                .iter()
                .find(|(header, _)| header == name)
                .map(|(_, value)| value.clone())
        };
        assert_eq!(
            param("mcp-param-region").as_deref(),
            Some("=?base64?IMO8bsOvY29kZSA=?=")
        );
        assert_eq!(param("mcp-param-count").as_deref(), Some("3"));
        assert_eq!(param("mcp-param-tenant").as_deref(), Some("acme"));
        assert_eq!(param("mcp-param-ratio"), None, "numbers are not mirrored");
        assert_eq!(found.len(), 5);
    }

    #[test]
    fn a_value_that_looks_wrapped_is_wrapped() {
        assert_eq!(encoded("=?base64?abc?="), "=?base64?PT9iYXNlNjQ/YWJjPz0=?=");
        assert_eq!(encoded("plain value"), "plain value");
    }
}

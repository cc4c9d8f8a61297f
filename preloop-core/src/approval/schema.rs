//! Validation of (edited) arguments against a tool's JSON input schema.

use serde_json::Value;

/// Most validation errors reported for one document.
const MAX_ERRORS: usize = 20;

/// Checks `arguments` against `schema`; the error lists what does not fit, with JSON pointers.
/// A schema that itself does not compile is reported as an error too: nothing unvalidated passes.
pub fn validate_arguments(schema: &Value, arguments: &Value) -> Result<(), Vec<String>> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|error| vec![format!("the tool's input schema is invalid: {error}")])?;
    let errors: Vec<String> = validator
        .iter_errors(arguments)
        .take(MAX_ERRORS)
        .map(|error| {
            let path = error.instance_path().to_string();
            if path.is_empty() {
                error.to_string()
            } else {
                format!("{path}: {error}")
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_are_checked_against_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {"count": {"type": "integer", "maximum": 10}, "name": {"type": "string"}},
            "required": ["name"]
        });
        validate_arguments(&schema, &json!({"name": "x", "count": 3})).unwrap();
        let errors = validate_arguments(&schema, &json!({"count": 30})).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("/count")), "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("name")), "{errors:?}");
    }

    #[test]
    fn an_invalid_schema_rejects_everything() {
        let errors = validate_arguments(&json!({"type": 12}), &json!({})).unwrap_err();
        assert!(errors[0].contains("invalid"), "{errors:?}");
    }
}

//! Validation of (edited) arguments against a tool's JSON input schema.

use serde_json::Value;

/// Most validation errors reported for one document.
const MAX_ERRORS: usize = 20;

/// A tool's input schema, compiled once.
#[derive(Debug)]
pub struct ArgumentSchema {
    validator: Result<jsonschema::Validator, SchemaError>,
}

/// Why a tool's input schema cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The schema does not compile.
    #[error("the tool's input schema is invalid: {source}")]
    Invalid {
        /// What the compiler found.
        #[source]
        source: Box<jsonschema::ValidationError<'static>>,
    },
}

impl ArgumentSchema {
    /// Compiles `schema`; a schema that does not compile is kept as that error.
    pub fn compile(schema: &Value) -> Self {
        Self {
            validator: jsonschema::validator_for(schema).map_err(|source| SchemaError::Invalid {
                source: Box::new(source),
            }),
        }
    }

    /// Whether the schema compiled.
    pub fn is_valid(&self) -> bool {
        self.validator.is_ok()
    }

    /// Checks `arguments`; the error lists what does not fit, with JSON pointers. A schema that
    /// does not compile rejects everything: nothing unvalidated passes.
    pub fn check(&self, arguments: &Value) -> Result<(), Vec<String>> {
        let validator = self
            .validator
            .as_ref()
            .map_err(|error| vec![error.to_string()])?;
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
}

/// Checks `arguments` against `schema` (compiling it for this one check).
pub fn validate_arguments(schema: &Value, arguments: &Value) -> Result<(), Vec<String>> {
    ArgumentSchema::compile(schema).check(arguments)
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

//! Glob patterns over tool and server names.
//!
//! `*` matches any run of characters, `?` one character, `[abc]` a class, `{a,b}` alternatives.
//! Patterns without wildcards compare exactly, and a wildcard pattern first checks its literal
//! prefix, so most non-matching names are rejected without running the glob.

use globset::{GlobBuilder, GlobMatcher};

/// A compiled name pattern.
#[derive(Debug, Clone)]
pub(crate) enum NamePattern {
    /// `*`: every name.
    Any,
    /// A name without wildcards.
    Exact(Box<str>),
    /// A wildcard pattern.
    Glob {
        literal_prefix: Box<str>,
        matcher: GlobMatcher,
    },
}

/// Why a name pattern does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern is the empty string.
    #[error("the pattern is empty")]
    Empty,
    /// The glob syntax is wrong (an unclosed class or alternative, ...).
    #[error("{}", .source.kind())]
    Glob {
        /// What the glob compiler found.
        #[source]
        source: globset::Error,
    },
}

const WILDCARDS: [char; 5] = ['*', '?', '[', '{', '\\'];

impl NamePattern {
    /// Compiles a pattern; the error describes what is wrong with it.
    pub(crate) fn parse(pattern: &str) -> Result<Self, PatternError> {
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        if pattern.chars().all(|c| c == '*') {
            return Ok(Self::Any);
        }
        let Some(first_wildcard) = pattern.find(WILDCARDS) else {
            return Ok(Self::Exact(pattern.into()));
        };
        let glob = GlobBuilder::new(pattern)
            .literal_separator(false)
            .backslash_escape(true)
            .empty_alternates(true)
            .build()
            .map_err(|source| PatternError::Glob { source })?;
        Ok(Self::Glob {
            literal_prefix: pattern[..first_wildcard].into(),
            matcher: glob.compile_matcher(),
        })
    }

    /// Whether `name` matches.
    pub(crate) fn matches(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(exact) => **exact == *name,
            Self::Glob {
                literal_prefix,
                matcher,
            } => name.starts_with(&**literal_prefix) && matcher.is_match(name),
        }
    }

    /// The name, when the pattern has no wildcards.
    pub(crate) fn exact(&self) -> Option<&str> {
        match self {
            Self::Exact(name) => Some(name),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, name: &str) -> bool {
        NamePattern::parse(pattern).unwrap().matches(name)
    }

    #[test]
    fn glob_edge_cases() {
        assert!(matches("*", ""));
        assert!(matches("**", "anything__at_all"));
        assert!(matches("github__*", "github__create_issue"));
        assert!(matches("github__*", "github__"));
        assert!(!matches("github__*", "gitlab__create_issue"));
        assert!(!matches("github__*", "github_create"));
        assert!(matches("*__delete_*", "fs__delete_file"));
        assert!(!matches("*__delete_*", "fs__undelete"));
        assert!(matches("*delete*", "fs__undelete"));
        assert!(matches("fs__read_?", "fs__read_a"));
        assert!(!matches("fs__read_?", "fs__read_ab"));
        assert!(matches("fs__{read,write}_file", "fs__write_file"));
        assert!(!matches("fs__{read,write}_file", "fs__delete_file"));
        assert!(matches("fs__[rw]*", "fs__write"));
        assert!(!matches("fs__[rw]*", "fs__delete"));
        // `*` crosses `/` and `.`: tool names are not paths.
        assert!(matches("a*z", "a/b.c/z"));
        // Exact patterns are exact: no prefix or case folding.
        assert!(matches("time__now", "time__now"));
        assert!(!matches("time__now", "time__now2"));
        assert!(!matches("time__now", "TIME__NOW"));
        // An escaped wildcard is literal.
        assert!(matches(r"odd\*name", "odd*name"));
        assert!(!matches(r"odd\*name", "oddXname"));
    }

    #[test]
    fn broken_patterns_are_errors() {
        assert!(NamePattern::parse("").is_err());
        assert!(NamePattern::parse("fs__[rw").is_err());
        assert!(NamePattern::parse("fs__{a,b").is_err());
    }
}

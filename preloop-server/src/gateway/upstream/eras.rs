//! Which protocol generations an upstream speaks, and what it offers in each.
//!
//! A server may speak both the session generation (revisions up to 2025-11-25, `initialize`)
//! and the stateless one (2026-07-28), and offer different things in each: its 2026 path may
//! have tools whose questions come back as `input_required`, its session path tools that ask
//! during the call. The gateway shows the union, and asks each request in the calling
//! client's own generation when the upstream offers the thing there, else in the other one
//! (translating the questions: see [`super::rounds`]). An upstream that speaks one
//! generation is always asked in it.

use preloop_core::registry::OperationKind;
use std::collections::HashMap;

/// A protocol generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// Sessions opened by `initialize` (revisions up to 2025-11-25).
    Legacy,
    /// Stateless requests carrying their own context (2026-07-28).
    Modern,
}

impl Era {
    /// The generation of a client that answers questions in a later call (2026-07-28) or
    /// during the call (earlier revisions).
    pub fn of_client(answers_later: bool) -> Self {
        if answers_later {
            Self::Modern
        } else {
            Self::Legacy
        }
    }
}

/// What an upstream offers in which generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Eras {
    /// Whether it answered a 2026-07-28 discovery.
    modern: bool,
    /// Whether it answered in a session.
    legacy: bool,
    /// Tools, prompts and resources (by kind and the upstream's own name or URI) offered in
    /// one generation only.
    only: HashMap<(OperationKind, String), Era>,
}

impl Eras {
    /// An upstream that answered in the generations given.
    pub fn new(modern: bool, legacy: bool) -> Self {
        Self {
            modern,
            legacy,
            only: HashMap::new(),
        }
    }

    /// Whether it speaks 2026-07-28.
    pub fn speaks_modern(&self) -> bool {
        self.modern
    }

    /// Whether it answers in sessions.
    pub fn speaks_legacy(&self) -> bool {
        self.legacy
    }

    /// The union of what the two generations list, each item once under its own `name`
    /// (the 2026-07-28 definition where both have it: it may carry what the earlier one
    /// cannot), remembering what only one of them offers.
    pub fn merge<T>(
        &mut self,
        kind: OperationKind,
        modern: Vec<T>,
        legacy: Vec<T>,
        name: impl Fn(&T) -> &str,
    ) -> Vec<T> {
        if !(self.modern && self.legacy) {
            return if self.modern { modern } else { legacy };
        }
        let in_modern: std::collections::HashSet<String> =
            modern.iter().map(|item| name(item).to_owned()).collect();
        let mut merged = modern;
        for item in &merged {
            self.only.insert((kind, name(item).to_owned()), Era::Modern);
        }
        for item in legacy {
            let own = name(&item).to_owned();
            if in_modern.contains(&own) {
                self.only.remove(&(kind, own));
            } else {
                self.only.insert((kind, own), Era::Legacy);
                merged.push(item);
            }
        }
        merged
    }

    /// The generation to ask for the `kind` called `own` (the upstream's name or URI) on
    /// behalf of a client of generation `client`.
    pub fn route(&self, kind: OperationKind, own: &str, client: Era) -> Era {
        match (self.modern, self.legacy) {
            (false, _) => Era::Legacy,
            (true, false) => Era::Modern,
            (true, true) => self
                .only
                .get(&(kind, own.to_owned()))
                .copied()
                .unwrap_or(client),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_is_asked_in_its_own_generation_where_the_upstream_offers_the_tool_there() {
        let mut eras = Eras::new(true, true);
        let tools = eras.merge(
            OperationKind::Tool,
            vec!["both", "modern_only"],
            vec!["both", "legacy_only"],
            |name| name,
        );
        assert_eq!(tools, ["both", "modern_only", "legacy_only"]);
        let tool = OperationKind::Tool;
        assert_eq!(eras.route(tool, "both", Era::Legacy), Era::Legacy);
        assert_eq!(eras.route(tool, "both", Era::Modern), Era::Modern);
        assert_eq!(eras.route(tool, "modern_only", Era::Legacy), Era::Modern);
        assert_eq!(eras.route(tool, "legacy_only", Era::Modern), Era::Legacy);
        // A prompt of the same name is another thing.
        assert_eq!(
            eras.route(OperationKind::Prompt, "modern_only", Era::Legacy),
            Era::Legacy
        );
    }

    #[test]
    fn an_upstream_of_one_generation_is_always_asked_in_it() {
        let mut legacy = Eras::new(false, true);
        assert_eq!(
            legacy.merge(OperationKind::Tool, vec!["x"], vec!["y"], |n| n),
            ["y"]
        );
        assert_eq!(
            legacy.route(OperationKind::Tool, "y", Era::Modern),
            Era::Legacy
        );
        let modern = Eras::new(true, false);
        assert_eq!(
            modern.route(OperationKind::Tool, "x", Era::Legacy),
            Era::Modern
        );
    }
}

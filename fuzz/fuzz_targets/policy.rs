//! Policy documents, as `policy apply` and `PUT /api/v1/policy` take them: any TOML, YAML or
//! JSON parses or is refused with an error, and a parsed document compiles or is refused.

#![no_main]

use libfuzzer_sys::fuzz_target;
use preloop_core::policy::{Format, Governance, GovernanceDocument};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for format in [Format::Toml, Format::Yaml] {
        if let Ok(document) = GovernanceDocument::parse(text, format) {
            let _ = Governance::compile(&document);
        }
    }
    if let Ok(document) = serde_json::from_str::<GovernanceDocument>(text) {
        let _ = Governance::compile(&document);
    }
});

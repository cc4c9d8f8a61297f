//! The server's configuration file: any text parses or is refused with an error, and a parsed
//! file resolves into settings, security rules and server documents, or is refused.

#![no_main]

use libfuzzer_sys::fuzz_target;
use preloop_server::config::{ConfigFile, Overrides, Settings};
use preloop_server::Egress;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = preloop_server::config::expand_variables(text, |name| (name.len() < 8).then(|| "x".to_owned()));
    let Ok(file) = toml::from_str::<ConfigFile>(text) else {
        return;
    };
    let _ = Egress::new(&file.security);
    for entry in &file.mcp_servers {
        let _ = entry.to_document("default", uuid::Uuid::nil(), chrono::Utc::now());
    }
    let _ = Settings::resolve(file, Overrides::default());
});

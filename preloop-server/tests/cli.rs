//! The administrative commands of the real binary, on a throwaway SQLite database.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn preloop(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_preloop"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn failed(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "unexpectedly succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn policies_users_keys_and_the_audit_chain_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    assert!(ok(&preloop(data, &["migrate"], None)).contains("up to date"));

    let policy = data.join("policy.yaml");
    std::fs::write(
        &policy,
        "policy:\n  default: allow\n  rules:\n    - id: no-deletes\n      tools: ['*__delete_*']\n      action: deny\n      message: Deletions are not allowed\n",
    )
    .unwrap();
    let path = policy.to_str().unwrap();
    assert!(
        ok(&preloop(data, &["policy", "apply", path], None)).contains("policy applied: 1 rules")
    );
    assert!(
        ok(&preloop(data, &["policy", "apply", path], None)).contains("unchanged"),
        "apply is idempotent"
    );
    assert!(
        ok(&preloop(
            data,
            &["policy", "export", "--format", "yaml"],
            None
        ))
        .contains("no-deletes")
    );
    let explained = ok(&preloop(
        data,
        &["policy", "test", "fs__delete_file", "--role", "agent"],
        None,
    ));
    assert!(
        explained.contains("denied (\"Deletions are not allowed\") by rule `no-deletes`"),
        "{explained}"
    );
    assert!(
        ok(&preloop(data, &["policy", "test", "fs__read_file"], None))
            .contains("allowed by the default")
    );

    let broken = data.join("broken.toml");
    std::fs::write(
        &broken,
        "[[policy.rules]]\nid = \"bad\"\ntools = [\"*\"]\nwhen = 'args.x =='\naction = \"deny\"\n",
    )
    .unwrap();
    let error = failed(&preloop(
        data,
        &["policy", "apply", broken.to_str().unwrap()],
        None,
    ));
    assert!(
        error.contains("rule `bad`") && error.contains("CEL syntax error"),
        "{error}"
    );
    let bad_args = failed(&preloop(
        data,
        &["policy", "test", "x__y", "--args", "{nope"],
        None,
    ));
    assert!(bad_args.contains("--args is not JSON"), "{bad_args}");

    assert!(
        ok(&preloop(
            data,
            &[
                "user",
                "create",
                "dana@example.com",
                "--role",
                "approver",
                "--password-stdin"
            ],
            Some("a long enough password\n")
        ))
        .contains("approver")
    );
    assert!(
        failed(&preloop(
            data,
            &["user", "create", "DANA@example.com"],
            None
        ))
        .contains("already exists")
    );
    assert!(
        failed(&preloop(data, &["user", "create", "not-an-email"], None)).contains("not an e-mail")
    );
    let key = ok(&preloop(
        data,
        &[
            "apikey",
            "create",
            "--user",
            "dana@example.com",
            "--name",
            "ci",
            "--expires-in",
            "30d",
        ],
        None,
    ));
    assert!(key.lines().any(|l| l.starts_with("pl_")), "{key}");
    let id = key.split_whitespace().nth(2).unwrap();
    assert!(ok(&preloop(data, &["apikey", "revoke", id], None)).contains("revoked"));
    assert!(
        failed(&preloop(data, &["apikey", "revoke", "not-an-id"], None))
            .contains("not an API key id")
    );
    assert!(
        failed(&preloop(
            data,
            &[
                "apikey",
                "create",
                "--user",
                "nobody@example.com",
                "--name",
                "x"
            ],
            None
        ))
        .contains("no user")
    );

    let verified = ok(&preloop(data, &["audit", "verify"], None));
    assert!(
        verified.contains("audit chain intact: 1 events"),
        "{verified}"
    );
    let exported = ok(&preloop(data, &["audit", "export"], None));
    assert!(exported.contains("\"policy_changed\""), "{exported}");
}

#[test]
fn serve_refuses_a_redaction_pattern_that_is_not_a_glob() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("preloop.toml");
    std::fs::write(&config, "[channels]\nredact_keys = [\"card_[x\"]\n").unwrap();
    let error = failed(&preloop(
        dir.path(),
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ],
        None,
    ));
    assert!(
        error.contains("redact_keys") && error.contains("card_[x"),
        "{error}"
    );
}

//! The web console in a real browser: headless Chromium (Debian's, installed by
//! `scripts/install-browser`, which `scripts/test` runs) driven through ChromeDriver. An approver
//! signs in, sees a blocked MCP call's request appear live, edits an argument and approves, and
//! the blocked call returns with the edited argument; an approver without an account decides
//! through the e-mailed/webhooked decision page. Screenshots are saved under
//! `target/test-artifacts/` (the README's comes from here).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

use preloop_testkit as common;

use common::fakes::FakePlatform;
use common::gateway::{Gateway, returned};
use common::{ADMIN_KEY, Process, rest, spawn};
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PASSWORD: &str = "correct horse battery staple";

/// ChromeDriver on a free port, and a headless Chromium session through it.
async fn browser(profile: &std::path::Path) -> (Process, Client) {
    for program in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            std::path::Path::new(program).exists(),
            "{program} is missing: run scripts/test (it installs Chromium with scripts/install-browser)"
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = spawn(
        Command::new(CHROMEDRIVER).args([format!("--port={port}")]),
        "ChromeDriver was started successfully on port",
    );
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
                "--window-size=1280,900", format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let client = ClientBuilder::rustls()
        .unwrap()
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("ChromeDriver starts a session");
    (driver, client)
}

fn artifact(name: &str) -> PathBuf {
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&directory).unwrap();
    directory.join(name)
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(artifact(name), png).unwrap();
}

/// The element `css` selects, once it appears; a screenshot of the page if it never does.
async fn wait_for(browser: &Client, css: &str) -> fantoccini::elements::Element {
    match browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(error) => {
            screenshot(browser, "failure.png").await;
            panic!("`{css}` never appeared (see target/test-artifacts/failure.png): {error}")
        }
    }
}

async fn text_of(browser: &Client, css: &str) -> String {
    wait_for(browser, css).await.text().await.unwrap()
}

/// The next webhook delivery announcing a new request.
async fn requested(hooks: &mut FakePlatform) -> Value {
    loop {
        let delivery = hooks.next("/hook").await.json();
        if delivery["event"] == "approval.requested" {
            return delivery;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_edits_and_approves_a_blocked_call_live_in_the_console() {
    let mut hooks = FakePlatform::start().await;
    let gateway = Gateway::start_with_policy(
        "channels = [\"web\", \"webhook\"]\nallow_edit = true",
        &format!(
            "[channels.webhook]\nurl = \"{}/hook\"\nsecret = \"console-test-secret\"",
            hooks.url
        ),
    )
    .await;
    let (status, body) = rest(
        Method::POST,
        &gateway.url("/api/v1/users"),
        Some(ADMIN_KEY),
        Some(json!({"email": "approver@example.com", "roles": ["admin"], "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let profile = tempfile::tempdir().unwrap();
    let (_driver, browser) = browser(profile.path()).await;

    // Sign in.
    browser.goto(&gateway.url("/")).await.unwrap();
    wait_for(&browser, "#email")
        .await
        .send_keys("approver@example.com")
        .await
        .unwrap();
    wait_for(&browser, "#password")
        .await
        .send_keys("wrong password")
        .await
        .unwrap();
    wait_for(&browser, "#signin").await.click().await.unwrap();
    assert!(
        text_of(&browser, "[role=alert]")
            .await
            .contains("wrong e-mail address or password")
    );
    let password = wait_for(&browser, "#password").await;
    password.clear().await.unwrap();
    password.send_keys(PASSWORD).await.unwrap();
    wait_for(&browser, "#signin").await.click().await.unwrap();
    wait_for(&browser, "#inbox").await;
    wait_for(&browser, "#live.on").await;

    // A blocked call appears in the inbox without a reload.
    let blocked = gateway.blocked_call();
    let row = wait_for(&browser, "#inbox tr[data-request]").await;
    let request_id = row.attr("data-request").await.unwrap().unwrap();
    assert!(row.text().await.unwrap().contains("up__add"));
    screenshot(&browser, "console-inbox.png").await;

    // Edit an argument and approve: the call runs with the edited argument.
    row.click().await.unwrap();
    let arguments = wait_for(&browser, "textarea#arguments").await;
    let shown: Value =
        serde_json::from_str(&arguments.prop("value").await.unwrap().unwrap()).unwrap();
    assert_eq!(
        shown["password"], "hunter2",
        "approvers see the arguments they approve"
    );
    arguments.clear().await.unwrap();
    arguments
        .send_keys(r#"{"a": 200, "b": 5, "password": "hunter2"}"#)
        .await
        .unwrap();
    wait_for(&browser, "#comment")
        .await
        .send_keys("b should be 5")
        .await
        .unwrap();
    screenshot(&browser, "console-approval.png").await;
    wait_for(&browser, "#approve").await.click().await.unwrap();
    assert_eq!(
        returned(blocked).await,
        "205",
        "the approved call ran with the edit"
    );
    wait_for(
        &browser,
        "#state [data-state=executed], #state [data-state=approved]",
    )
    .await;
    let request = gateway.request(&request_id).await;
    assert_eq!(request["approved_arguments"]["b"], 5);
    assert_eq!(request["votes"][0]["comment"], "b should be 5");
    assert_eq!(
        request["votes"][0]["approver_email"],
        "approver@example.com"
    );

    // The audit page verifies the chain.
    browser
        .goto(&gateway.url("/console/#/audit"))
        .await
        .unwrap();
    wait_for(&browser, "#verify").await.click().await.unwrap();
    assert!(text_of(&browser, "#verdict p").await.contains("intact"));

    // Servers and tools, policies (a hypothetical call explained), API keys.
    browser
        .goto(&gateway.url("/console/#/servers"))
        .await
        .unwrap();
    assert!(
        text_of(&browser, "[data-server=up]")
            .await
            .contains("up__add")
    );
    browser
        .goto(&gateway.url("/console/#/policies"))
        .await
        .unwrap();
    assert!(
        wait_for(&browser, "#policy")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap()
            .contains("big-sums")
    );
    wait_for(&browser, "#test-tool")
        .await
        .send_keys("up__add")
        .await
        .unwrap();
    let test_arguments = wait_for(&browser, "#test-arguments").await;
    test_arguments.clear().await.unwrap();
    test_arguments
        .send_keys(r#"{"a": 500, "b": 1}"#)
        .await
        .unwrap();
    wait_for(&browser, "#explain").await.click().await.unwrap();
    let explained = text_of(&browser, "#explanation").await;
    assert!(
        explained.contains("require_approval") && explained.contains("big-sums"),
        "{explained}"
    );
    wait_for(&browser, "#save-policy")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(
        text_of(&browser, ".notice").await,
        "Saved.",
        "the document round-trips"
    );
    browser.goto(&gateway.url("/console/#/keys")).await.unwrap();
    wait_for(&browser, "#key-name")
        .await
        .send_keys("laptop")
        .await
        .unwrap();
    wait_for(&browser, "#create-key")
        .await
        .click()
        .await
        .unwrap();
    assert!(text_of(&browser, "#new-key").await.starts_with("pl_"));

    // On a phone-sized screen.
    browser.set_window_size(390, 844).await.unwrap();
    browser
        .goto(&gateway.url("/console/#/approvals?status="))
        .await
        .unwrap();
    wait_for(&browser, "#inbox tr[data-request]").await;
    screenshot(&browser, "console-phone.png").await;

    // The decision page, for an approver without an account.
    let first = requested(&mut hooks).await;
    assert_eq!(first["request"]["id"], request_id.as_str());
    let blocked = gateway.blocked_call();
    let second = requested(&mut hooks).await;
    let page = second["links"]["page"].as_str().unwrap();
    browser.goto(page).await.unwrap();
    assert!(text_of(&browser, "h1").await.contains("up__add"));
    assert!(text_of(&browser, "#arguments").await.contains("[redacted]"));
    wait_for(&browser, "#comment")
        .await
        .send_keys("ok from my phone")
        .await
        .unwrap();
    screenshot(&browser, "decision-page.png").await;
    wait_for(&browser, "button[value=approve]")
        .await
        .click()
        .await
        .unwrap();
    assert!(
        text_of(&browser, "[role=status]")
            .await
            .contains("Your decision is recorded")
    );
    assert_eq!(returned(blocked).await, "201");
    browser.close().await.unwrap();
}

//! The web console in a real browser: headless Chromium (Debian's, installed by
//! `scripts/install-browser`, which `scripts/test` runs) driven through ChromeDriver. An approver
//! signs in, sees a blocked MCP call's request appear live, edits an argument and approves, and
//! the blocked call returns with the edited argument; an approver without an account decides
//! through the e-mailed/webhooked decision page. An admin connects a GitHub stand-in on the
//! Trackers page (a wrong token's refusal shown, then a working connection), synchronizes it
//! with "Sync now", finds an issue on the Issues page, reads and comments on it. Screenshots
//! are saved under `target/test-artifacts/` (the README's comes from here).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

use preloop_testkit as common;

use common::fakes::FakePlatform;
use common::gateway::{Gateway, returned};
use common::github::{FakeGitHub, sample_issues, synchronized_tracker};
use common::{ADMIN_KEY, Process, rest, spawn, start_gateway};
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

/// Types `text` into the field `css` selects, replacing what it held.
async fn fill(browser: &Client, css: &str, text: &str) {
    let field = wait_for(browser, css).await;
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// The `value` property of the field `css` selects.
async fn value_of(browser: &Client, css: &str) -> String {
    wait_for(browser, css)
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Signs in to the console at `url` as `email` with [`PASSWORD`] (and lands on Approvals).
async fn sign_in(browser: &Client, url: &str, email: &str) {
    browser.goto(url).await.unwrap();
    fill(browser, "#email", email).await;
    fill(browser, "#password", PASSWORD).await;
    wait_for(browser, "#signin").await.click().await.unwrap();
    wait_for(browser, "#live.on").await;
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

const IMPORTER_BODY: &str =
    "The importer crashes on an empty CSV.\n<img src=x onerror=alert(1)> must stay text.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_connects_a_tracker_syncs_it_and_comments_on_an_issue_in_the_console() {
    let github = FakeGitHub::start("ghp_console_token", sample_issues).await;
    let data = tempfile::tempdir().unwrap();
    let server = start_gateway(data.path(), "[policy]\ndefault = \"allow\"\n", &[]);
    let url = |path: &str| format!("{}{path}", server.url);
    let (status, body) = rest(
        Method::POST,
        &url("/api/v1/users"),
        Some(ADMIN_KEY),
        Some(json!({"email": "admin@example.com", "roles": ["admin"], "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let profile = tempfile::tempdir().unwrap();
    let (_driver, browser) = browser(profile.path()).await;
    sign_in(&browser, &url("/"), "admin@example.com").await;
    wait_for(&browser, "a[data-nav=trackers]")
        .await
        .click()
        .await
        .unwrap();
    assert!(
        text_of(&browser, "#no-trackers")
            .await
            .contains("No trackers yet")
    );

    // A wrong token: the tracker's refusal, in its own words.
    wait_for(&browser, "a[data-nav=trackers].active").await;
    fill(&browser, "#tracker-name", "gh").await;
    fill(&browser, "#tracker-url", &github.url).await;
    fill(&browser, "#tracker-token", "ghp_wrong").await;
    fill(&browser, "#tracker-projects", "acme/web").await;
    fill(&browser, "#tracker-webhook-secret", "whsec_console").await;
    fill(&browser, "#tracker-interval", "1h").await;
    wait_for(&browser, "#test-connection")
        .await
        .click()
        .await
        .unwrap();
    let refused = text_of(&browser, "#connection-error").await;
    assert!(
        refused.contains("the tracker refused the credentials: Bad credentials"),
        "{refused}"
    );

    // The right token: the project as the tracker describes it; then connect it.
    fill(&browser, "#tracker-token", "ghp_console_token").await;
    wait_for(&browser, "#test-connection")
        .await
        .click()
        .await
        .unwrap();
    let connected = text_of(&browser, "#connection-ok").await;
    assert!(connected.contains("acme/web"), "{connected}");
    wait_for(&browser, "#add-tracker")
        .await
        .click()
        .await
        .unwrap();
    assert!(
        text_of(&browser, "#tracker-added")
            .await
            .contains("Connected gh")
    );
    let card = wait_for(&browser, "[data-tracker=gh]").await;
    let tracker_id = card.attr("data-id").await.unwrap().unwrap();
    assert_eq!(
        value_of(&browser, "[data-tracker=gh] .webhook-url").await,
        url(&format!("/api/v1/trackers/{tracker_id}/webhook"))
    );
    let shown = card.text().await.unwrap();
    assert!(
        shown.contains("webhook secret you set")
            && !shown.contains("ghp_console_token")
            && !shown.contains("whsec_console"),
        "secrets are write-only: {shown}"
    );
    assert_eq!(
        value_of(&browser, "#tracker-token").await,
        "",
        "the form is emptied"
    );

    // Sync now picks up an issue the first synchronization did not see.
    synchronized_tracker(&server.url, 3).await;
    github.add_issue("Importer crashes on empty files", IMPORTER_BODY, 30);
    wait_for(&browser, "[data-tracker=gh] [data-action=sync]")
        .await
        .click()
        .await
        .unwrap();
    let done = wait_for(&browser, "[data-tracker=gh] .sync-done").await;
    assert_eq!(
        done.attr("data-issues-indexed").await.unwrap().as_deref(),
        Some("4")
    );
    let outcome = done.text().await.unwrap();
    assert!(
        outcome.starts_with("Synchronized") && outcome.contains("4 issues indexed"),
        "{outcome}"
    );
    assert_eq!(
        text_of(&browser, "[data-tracker=gh] [data-field=issues-indexed]").await,
        "4"
    );
    assert_eq!(
        text_of(&browser, "[data-tracker=gh] [data-field=last-error]").await,
        "none"
    );
    screenshot(&browser, "console-trackers.png").await;

    // Search on the Issues page; the query is in the address, so a reload keeps it.
    wait_for(&browser, "a[data-nav=issues]")
        .await
        .click()
        .await
        .unwrap();
    fill(&browser, "#issue-query", "importer").await;
    wait_for(&browser, "#search-issues")
        .await
        .click()
        .await
        .unwrap();
    wait_for(&browser, "#issue-results tr[data-issue]").await;
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("#/issues?query=importer")
    );
    browser.refresh().await.unwrap();
    assert_eq!(value_of(&browser, "#issue-query").await, "importer");
    let rows = browser
        .find_all(Locator::Css("#issue-results tr[data-issue]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "only the importer issue matches");
    let row = rows[0].text().await.unwrap();
    assert!(
        row.contains("acme/web#4") && row.contains("Importer crashes on empty files"),
        "{row}"
    );

    // The issue: its title, its body as text (the markup in it is not markup), its link.
    rows[0].click().await.unwrap();
    assert_eq!(
        text_of(&browser, "#issue-title").await,
        "Importer crashes on empty files"
    );
    let body = wait_for(&browser, "#issue-body").await;
    assert_eq!(
        body.prop("textContent").await.unwrap().unwrap(),
        IMPORTER_BODY
    );
    assert!(
        browser
            .find_all(Locator::Css("#issue-body *"))
            .await
            .unwrap()
            .is_empty(),
        "the body is text, never HTML"
    );
    let link = wait_for(&browser, "#issue-link").await;
    assert_eq!(
        link.attr("href").await.unwrap(),
        Some(format!("{}/acme/web/issues/4", github.url))
    );
    assert_eq!(
        link.attr("rel").await.unwrap().as_deref(),
        Some("noopener noreferrer")
    );
    assert!(
        text_of(&browser, "[data-field=labels]")
            .await
            .contains("bug")
    );
    assert!(
        text_of(&browser, "[data-field=assignees]")
            .await
            .contains("octocat")
    );

    // A comment goes to the tracker.
    fill(&browser, "#issue-comment", "Reproduced with an empty file.").await;
    screenshot(&browser, "console-issue.png").await;
    wait_for(&browser, "#add-comment")
        .await
        .click()
        .await
        .unwrap();
    assert!(
        text_of(&browser, "#comment-added")
            .await
            .contains("Reproduced with an empty file.")
    );
    assert_eq!(
        github.repo.lock().unwrap().comments,
        vec![(4, "Reproduced with an empty file.".to_owned())]
    );

    // Back returns to the search; an unknown issue is a clear error.
    browser.back().await.unwrap();
    assert_eq!(value_of(&browser, "#issue-query").await, "importer");
    wait_for(&browser, "#issue-results tr[data-issue]").await;
    browser
        .goto(&url("/console/#/issues/no-such-issue"))
        .await
        .unwrap();
    assert_eq!(
        text_of(&browser, "[role=alert]").await,
        "no issue `no-such-issue`"
    );

    // Delete asks first, then disconnects.
    browser.goto(&url("/console/#/trackers")).await.unwrap();
    wait_for(&browser, "[data-tracker=gh] [data-action=delete]")
        .await
        .click()
        .await
        .unwrap();
    browser.accept_alert().await.unwrap();
    assert!(
        text_of(&browser, "#no-trackers")
            .await
            .contains("No trackers yet")
    );
    let (status, list) = rest(Method::GET, &url("/api/v1/trackers"), Some(ADMIN_KEY), None).await;
    assert_eq!(
        (status, list["items"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    // Its issues left the index with it.
    let (status, found) = rest(
        Method::GET,
        &url("/api/v1/issues/search?query=importer"),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!((status, &found["items"]), (200, &json!([])), "{found}");
    browser.close().await.unwrap();
}

//! End to end through the chat and e-mail approval channels, each against a local server that
//! speaks the platform's wire format: the request is delivered, a forged or replayed callback
//! is refused, an unknown or unauthorised person is refused, the approver's button press (or the
//! e-mailed page's form) approves the real pending request, the blocked MCP call returns, the
//! message is updated, and a double click changes nothing.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

use preloop_testkit as common;

use common::fakes::{FakePlatform, smtp_sink};
use common::gateway::{Gateway, api_key, returned};
use common::wait::{eventually, eventually_some};
use common::{ADMIN_KEY, rest};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const TELEGRAM_SECRET: &str = "telegram-webhook-secret_1";

fn users_table() -> &'static str {
    r#"users = { "ADMIN" = "admin@localhost", "MEMBER" = "member@example.com" }"#
}

/// `[channels.slack]` for a bot posting through the Web API at `api` (a stand-in's URL), with
/// `extra` lines.
fn slack_config(api: &str, extra: &str) -> String {
    format!(
        "[channels.slack]\nbot_token = \"xoxb-test\"\nchannel = \"C0APPROVALS\"\nsigning_secret = \"{SLACK_SECRET}\"\napi_url = \"{api}/api\"\n{extra}"
    )
}

/// A Slack `block_actions` interaction as Slack sends it (form-encoded `payload`).
fn slack_press(user: &str, action: &str, request_id: &str, response_url: &str) -> String {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "verification-token-unused",
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0APPROVALS", "is_ephemeral": false},
        "trigger_id": "123.456.abc",
        "team": {"id": "T0001", "domain": "example"},
        "channel": {"id": "C0APPROVALS", "name": "approvals"},
        "response_url": response_url,
        "actions": [{
            "action_id": action, "block_id": "preloop_decision", "type": "button", "style": "primary",
            "text": {"type": "plain_text", "text": "Approve", "emoji": true},
            "value": request_id, "action_ts": "1700000001.000200"
        }]
    });
    serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap()
}

async fn post_slack(gateway: &Gateway, body: &str, timestamp: i64, secret: &str) -> u16 {
    let timestamp = timestamp.to_string();
    reqwest::Client::new()
        .post(gateway.url("/api/v1/channels/slack/interactions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", &timestamp)
        .header(
            "x-slack-signature",
            preloop_server::signing::slack_signature(secret, &timestamp, body.as_bytes()),
        )
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_buttons_approve_as_the_mapped_approver_and_forgeries_are_refused() {
    let mut slack = FakePlatform::start().await;
    let gateway = Gateway::start("slack", &slack_config(&slack.url, users_table())).await;
    let blocked = gateway.blocked_call();

    let posted = slack.next("/api/chat.postMessage").await;
    assert_eq!(posted.headers["authorization"], "Bearer xoxb-test");
    let message = posted.json();
    assert_eq!(message["channel"], "C0APPROVALS");
    let shown = message.to_string();
    assert!(
        shown.contains("up__add") && shown.contains("big-sums"),
        "{shown}"
    );
    assert!(
        shown.contains("[redacted]") && !shown.contains("hunter2"),
        "{shown}"
    );
    let buttons = &message["blocks"][3]["elements"];
    assert_eq!(buttons[0]["action_id"], "approve");
    let request_id = buttons[0]["value"].as_str().unwrap().to_owned();
    let respond = format!("{}/response/1", slack.url);
    let now = chrono::Utc::now().timestamp();

    // Forged: signed with another secret; replayed: a genuine signature from 10 minutes ago.
    let press = slack_press("ADMIN", "approve", &request_id, &respond);
    assert_eq!(
        post_slack(&gateway, &press, now, "not-the-secret").await,
        401
    );
    assert_eq!(
        post_slack(&gateway, &press, now - 600, SLACK_SECRET).await,
        401
    );
    // Someone Slack knows but Preloop does not, and a member who is not an approver.
    for (user, reason) in [("STRANGER", "not linked"), ("MEMBER", "not an approver")] {
        let press = slack_press(user, "approve", &request_id, &respond);
        assert_eq!(post_slack(&gateway, &press, now, SLACK_SECRET).await, 200);
        let reply = slack.next("/response/1").await.json();
        assert_eq!(reply["response_type"], "ephemeral");
        assert!(reply["text"].as_str().unwrap().contains(reason), "{reply}");
    }
    assert_eq!(gateway.request(&request_id).await["state"], "pending");

    assert_eq!(post_slack(&gateway, &press, now, SLACK_SECRET).await, 200);
    assert_eq!(returned(blocked).await, "201");
    let rewritten = slack.next("/response/1").await.json();
    assert_eq!(rewritten["replace_original"], true);
    assert!(
        rewritten
            .to_string()
            .contains("Approved by admin@localhost"),
        "{rewritten}"
    );
    assert!(
        !rewritten.to_string().contains("\"actions\""),
        "buttons are gone"
    );
    let updated = slack.next("/api/chat.update").await.json();
    assert_eq!(
        (&updated["channel"], &updated["ts"]),
        (&json!("C0APPROVALS"), &json!("1700000000.000100"))
    );
    assert!(
        updated.to_string().contains("Approved by admin@localhost"),
        "{updated}"
    );

    // A double click changes nothing.
    assert_eq!(post_slack(&gateway, &press, now, SLACK_SECRET).await, 200);
    slack.next("/response/1").await;
    let request = gateway.request(&request_id).await;
    assert_eq!(request["votes"].as_array().unwrap().len(), 1, "{request}");
    assert_eq!(request["state"], "executed");
    let history: Vec<(String, String)> = request["channel_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["event"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        history.contains(&("created".to_owned(), "delivered".to_owned())),
        "{history:?}"
    );
    assert!(
        history.contains(&("decided".to_owned(), "delivered".to_owned())),
        "{history:?}"
    );
}

/// A Telegram update carrying a button press, as the Bot API sends it.
fn telegram_press(update_id: i64, user: i64, data: &str) -> Value {
    json!({
        "update_id": update_id,
        "callback_query": {
            "id": format!("cq-{update_id}"),
            "from": {"id": user, "is_bot": false, "first_name": "Ann", "username": "ann"},
            "message": {"message_id": 42, "date": 1_700_000_000, "chat": {"id": -1_001_234_567_890_i64, "type": "supergroup", "title": "Approvals"}},
            "chat_instance": "-5550000000000000000",
            "data": data
        }
    })
}

async fn post_telegram(gateway: &Gateway, update: &Value, secret: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new()
        .post(gateway.url("/api/v1/channels/telegram/webhook"))
        .json(update);
    if let Some(secret) = secret {
        request = request.header("x-telegram-bot-api-secret-token", secret);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_buttons_approve_by_webhook_and_the_message_loses_its_keyboard() {
    let mut telegram = FakePlatform::start().await;
    let gateway = Gateway::start(
        "telegram",
        &format!(
            "[channels.telegram]\nbot_token = \"123:ABC\"\nchat_id = -1001234567890\nwebhook_secret = \"{TELEGRAM_SECRET}\"\napi_url = \"{}\"\nusers = {{ \"1001\" = \"admin@localhost\", \"1002\" = \"member@example.com\" }}",
            telegram.url
        ),
    )
    .await;
    let registered = telegram.next("/bot123:ABC/setWebhook").await.json();
    assert_eq!(
        registered["url"],
        gateway.url("/api/v1/channels/telegram/webhook")
    );
    assert_eq!(registered["secret_token"], TELEGRAM_SECRET);
    let blocked = gateway.blocked_call();

    let sent = telegram.next("/bot123:ABC/sendMessage").await.json();
    assert_eq!(sent["chat_id"], -1_001_234_567_890_i64);
    let shown = sent["text"].as_str().unwrap();
    assert!(
        shown.contains("up__add") && shown.contains("[redacted]") && !shown.contains("hunter2")
    );
    let approve = sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        approve.starts_with("approve:") && approve.len() <= 64,
        "{approve}"
    );
    let request_id = uuid::Uuid::parse_str(&approve["approve:".len()..])
        .unwrap()
        .to_string();

    let press = telegram_press(1, 1001, &approve);
    assert_eq!(post_telegram(&gateway, &press, None).await, 401);
    assert_eq!(post_telegram(&gateway, &press, Some("wrong")).await, 401);
    for (update_id, user, reason) in [(2, 999, "not linked"), (3, 1002, "not an approver")] {
        let stranger = telegram_press(update_id, user, &approve);
        assert_eq!(
            post_telegram(&gateway, &stranger, Some(TELEGRAM_SECRET)).await,
            200
        );
        let answered = telegram.next("/answerCallbackQuery").await.json();
        assert_eq!(answered["callback_query_id"], format!("cq-{update_id}"));
        assert_eq!(answered["show_alert"], true);
        assert!(
            answered["text"].as_str().unwrap().contains(reason),
            "{answered}"
        );
    }
    assert_eq!(gateway.request(&request_id).await["state"], "pending");

    assert_eq!(
        post_telegram(&gateway, &press, Some(TELEGRAM_SECRET)).await,
        200
    );
    assert_eq!(returned(blocked).await, "201");
    let answered = telegram.next("/answerCallbackQuery").await.json();
    assert_eq!(answered["show_alert"], false);
    assert!(
        answered["text"]
            .as_str()
            .unwrap()
            .contains("Approved by admin@localhost")
    );
    let edited = telegram.next("/editMessageText").await.json();
    assert_eq!(
        (&edited["chat_id"], &edited["message_id"]),
        (&json!(-1_001_234_567_890_i64), &json!(42))
    );
    assert!(
        edited["text"]
            .as_str()
            .unwrap()
            .starts_with("Approved by admin@localhost")
    );
    assert!(
        edited.get("reply_markup").is_none(),
        "the keyboard is removed"
    );

    // A double click is answered, and changes nothing.
    assert_eq!(
        post_telegram(
            &gateway,
            &telegram_press(4, 1001, &approve),
            Some(TELEGRAM_SECRET)
        )
        .await,
        200
    );
    telegram.next("/answerCallbackQuery").await;
    assert_eq!(
        gateway.request(&request_id).await["votes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_button_presses_arrive_by_long_polling_too() {
    let mut telegram = FakePlatform::start().await;
    let gateway = Gateway::start(
        "telegram",
        &format!(
            "[channels.telegram]\nbot_token = \"123:ABC\"\nchat_id = \"@approvals\"\nupdates = \"polling\"\napi_url = \"{}\"\nusers = {{ \"1001\" = \"admin@localhost\" }}",
            telegram.url
        ),
    )
    .await;
    let blocked = gateway.blocked_call();
    let sent = telegram.next("/sendMessage").await.json();
    assert_eq!(sent["chat_id"], "@approvals");
    let approve = sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        .as_str()
        .unwrap()
        .to_owned();
    telegram
        .updates
        .lock()
        .unwrap()
        .push_back(telegram_press(7, 1001, &approve));
    assert_eq!(returned(blocked).await, "201");
    assert_eq!(
        telegram.next("/answerCallbackQuery").await.json()["callback_query_id"],
        "cq-7"
    );
    telegram.next("/editMessageText").await;
}

async fn post_mattermost(url: &str, user: &str, context: &Value) -> (u16, Value) {
    rest(
        Method::POST,
        url,
        None,
        Some(json!({
            "user_id": user, "user_name": user.to_lowercase(), "channel_id": "ch0001",
            "team_id": "team0001", "post_id": "post0001", "trigger_id": "trigger0001",
            "type": "", "data_source": "", "context": context
        })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mattermost_buttons_approve_only_with_the_posts_secret() {
    let mut mattermost = FakePlatform::start().await;
    let gateway = Gateway::start(
        "mattermost",
        &format!(
            "[channels.mattermost]\nwebhook_url = \"{}/hooks/xyz\"\nchannel = \"approvals\"\n{}",
            mattermost.url,
            users_table()
        ),
    )
    .await;
    let blocked = gateway.blocked_call();
    let post = mattermost.next("/hooks/xyz").await.json();
    assert_eq!(post["channel"], "approvals");
    assert!(!post.to_string().contains("hunter2"));
    let approve = &post["attachments"][0]["actions"][0];
    assert_eq!(approve["id"], "approve");
    let callback = approve["integration"]["url"].as_str().unwrap().to_owned();
    assert_eq!(callback, gateway.url("/api/v1/channels/mattermost/actions"));
    let context = approve["integration"]["context"].clone();
    let request_id = context["request_id"].as_str().unwrap().to_owned();

    let mut forged = context.clone();
    forged["secret"] = json!("guessed");
    assert_eq!(post_mattermost(&callback, "ADMIN", &forged).await.0, 401);
    let (status, _) = rest(
        Method::POST,
        &callback,
        None,
        Some(json!({"user_id": "ADMIN"})),
    )
    .await;
    assert_eq!(status, 400);
    for (user, reason) in [("STRANGER", "not linked"), ("MEMBER", "not an approver")] {
        let (status, reply) = post_mattermost(&callback, user, &context).await;
        assert_eq!(status, 200);
        assert!(
            reply["ephemeral_text"].as_str().unwrap().contains(reason),
            "{reply}"
        );
        assert!(reply.get("update").is_none());
    }

    let (status, reply) = post_mattermost(&callback, "ADMIN", &context).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(returned(blocked).await, "201");
    let update = reply["update"].to_string();
    assert!(update.contains("Approved by admin@localhost"), "{update}");
    assert_eq!(
        reply["update"]["props"]["attachments"][0]["actions"],
        json!([])
    );

    let (status, reply) = post_mattermost(&callback, "ADMIN", &context).await;
    assert_eq!(status, 200);
    assert!(reply["ephemeral_text"].is_string());
    assert_eq!(
        gateway.request(&request_id).await["votes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_reaches_the_approvers_and_its_page_decides_only_on_post() {
    let (smtp, mut mails) = smtp_sink().await;
    let gateway = Gateway::start(
        "email",
        &format!(
            "[channels.email]\nurl = \"{smtp}\"\nfrom = \"Preloop <preloop@example.com>\"\nto = [\"oncall@example.com\"]"
        ),
    )
    .await;
    let blocked = gateway.blocked_call();
    let mut received = Vec::new();
    for _ in 0..2 {
        received.push(
            tokio::time::timeout(Duration::from_secs(20), mails.recv())
                .await
                .expect("a mail arrives")
                .unwrap(),
        );
    }
    let mut recipients: Vec<String> = received.iter().flat_map(|m| m.to.clone()).collect();
    recipients.sort();
    // The admin (the policy's approver) and the configured extra address; not the member.
    assert_eq!(recipients, ["<admin@localhost>", "<oncall@example.com>"]);
    // The extra address is not an approver: it gets the console link, not the decision link.
    let decode = |data: &str| {
        String::from_utf8(
            quoted_printable::decode(data, quoted_printable::ParseMode::Robust).unwrap(),
        )
        .unwrap()
    };
    let oncall = received
        .iter()
        .find(|m| m.to == ["<oncall@example.com>"])
        .unwrap();
    let oncall_text = decode(&oncall.data);
    assert!(oncall_text.contains("/console/#/approvals/") && !oncall_text.contains("token="));
    let mail = received
        .iter()
        .find(|m| m.to == ["<admin@localhost>"])
        .unwrap();
    assert_eq!(mail.from, "<preloop@example.com>");
    assert!(
        mail.data
            .contains("Subject: Approval needed: up__add requested by agent@example.com")
    );
    assert!(mail.data.contains("multipart/alternative") && mail.data.contains("text/html"));
    assert!(!mail.data.contains("hunter2"));
    // Both parts are quoted-printable (long lines).
    let decoded = decode(&mail.data);
    let link = decoded
        .lines()
        .find_map(|line| line.strip_prefix("Approve or decline: "))
        .expect("the text part carries the link")
        .trim()
        .to_owned();
    assert!(link.starts_with(&gateway.url("/approval/")), "{link}");

    // Following the link (as a mail scanner would) shows the request and decides nothing.
    let page = reqwest::get(&link).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(html.contains("up__add") && html.contains("[redacted]") && !html.contains("hunter2"));
    assert!(html.contains(r#"value="approve""#));
    let request_id = link["/approval/".len() + gateway.url("").len()..]
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(gateway.request(&request_id).await["state"], "pending");
    let forged = link.replace("token=", "token=x");
    assert_eq!(reqwest::get(&forged).await.unwrap().status(), 404);

    let form = reqwest::Client::new();
    let submit = |url: String, decision: &'static str| {
        let form = form.clone();
        async move {
            let response = form
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("decision={decision}&comment=looks+fine"))
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(submit(forged.clone(), "approve").await.0, 404);
    let (status, html) = submit(link.clone(), "approve").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Your decision is recorded"));
    assert_eq!(returned(blocked).await, "201");
    // A second submission (a double click) adds no vote; changing one's mind is refused.
    let (status, _) = submit(link.clone(), "approve").await;
    assert!(status == 200 || status == 409, "{status}");
    assert_eq!(submit(link.clone(), "decline").await.0, 409);
    let request = gateway.request(&request_id).await;
    assert_eq!(request["votes"].as_array().unwrap().len(), 1);
    assert_eq!(request["votes"][0]["comment"], "looks fine");
    // The link was personal: the vote is the approver's own, as if cast in the console.
    assert_eq!(request["votes"][0]["approver_email"], "admin@localhost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_request_escalates_to_another_channel_then_expires() {
    let mut slack = FakePlatform::start().await;
    let policy = "timeout = \"3s\"\nchannels = [\"web\"]\n[[approval_policies.escalation]]\nafter = \"1s\"\napprovers = [\"member@example.com\"]\nchannels = [\"slack\"]";
    let gateway =
        Gateway::start_with_policy(policy, &slack_config(&slack.url, users_table())).await;
    let started = std::time::Instant::now();
    let blocked = gateway.blocked_call();
    // Nothing on Slack until the escalation stage starts.
    assert!(
        slack
            .quiet("/api/chat.postMessage", Duration::from_millis(700))
            .await
    );
    let escalated = slack.next("/api/chat.postMessage").await.json();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        escalated["text"]
            .as_str()
            .unwrap()
            .starts_with("Escalated: "),
        "{escalated}"
    );
    let request_id = escalated["blocks"][3]["elements"][0]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    // Nobody answers: the request expires, the call returns refused, the message says so.
    let result = returned(blocked).await;
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert!(
        result.to_lowercase().contains("expired") || result.to_lowercase().contains("timed out"),
        "{result}"
    );
    let updated = slack.next("/api/chat.update").await.json();
    assert!(
        updated["text"].as_str().unwrap().contains("Expired"),
        "{updated}"
    );
    assert_eq!(gateway.request(&request_id).await["state"], "expired");
}

mod live {
    use super::*;
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    type Socket = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    async fn open(gateway: &Gateway, bearer: Option<&str>) -> Result<Socket, u16> {
        let url = gateway
            .url("/api/v1/ws/unified")
            .replace("http://", "ws://");
        let mut request = url.into_client_request().unwrap();
        if let Some(token) = bearer {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(error) => panic!("{error}"),
        }
    }

    async fn send(socket: &mut Socket, message: Value) {
        socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    /// The next JSON message that is not a heartbeat.
    async fn next(socket: &mut Socket) -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(20), socket.next())
                .await
                .expect("a message arrives")
                .expect("the socket is open")
                .unwrap();
            if let Message::Text(text) = message {
                let value: Value = serde_json::from_str(text.as_str()).unwrap();
                if value["type"] != "heartbeat" {
                    return value;
                }
            }
        }
    }

    /// The next event on `topic` whose `data.event` is `event`; messages before it go to `seen`.
    async fn event(socket: &mut Socket, topic: &str, event: &str, seen: &mut Vec<Value>) -> Value {
        loop {
            let message = next(socket).await;
            if message["type"] == "event"
                && message["topic"] == topic
                && message["data"]["event"] == event
            {
                return message["data"].clone();
            }
            seen.push(message);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revoked_key_ends_its_websocket_at_the_next_heartbeat() {
        let gateway = Gateway::start("web", "[server]\nwebsocket_heartbeat_seconds = 1").await;
        let member_key = api_key(&gateway.server.url, "member@example.com").await;
        let mut socket = open(&gateway, Some(&member_key)).await.unwrap();
        assert_eq!(next(&mut socket).await["heartbeat_seconds"], 1);
        let (_, keys) = rest(
            Method::GET,
            &gateway.url("/api/v1/api-keys"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
        let id = keys["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == "key of member@example.com")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, _) = rest(
            Method::DELETE,
            &gateway.url(&format!("/api/v1/api-keys/{id}")),
            Some(ADMIN_KEY),
            None,
        )
        .await;
        assert_eq!(status, 204);
        // Verified credentials are trusted for up to 5 s; then the next heartbeat closes.
        let closed = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                    Some(Ok(_)) => continue,
                    other => panic!("the socket ended without a close frame: {other:?}"),
                }
            }
        })
        .await
        .expect("the socket closes");
        assert_eq!(closed, 4401);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_websocket_streams_approvals_live_to_whom_may_see_them() {
        let gateway = Gateway::start("web", "").await;
        assert_eq!(open(&gateway, Some("pl_wrong")).await.err(), Some(401));

        // An unauthenticated socket must authenticate first.
        let mut anonymous = open(&gateway, None).await.unwrap();
        send(
            &mut anonymous,
            json!({"type": "subscribe", "topics": ["approvals"]}),
        )
        .await;
        match anonymous.next().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 4401),
            other => panic!("expected a close frame, got {other:?}"),
        }

        let mut admin = open(&gateway, Some(ADMIN_KEY)).await.unwrap();
        assert_eq!(next(&mut admin).await["type"], "welcome");
        send(
            &mut admin,
            json!({"type": "subscribe", "topics": ["approvals", "activity"]}),
        )
        .await;
        assert_eq!(
            next(&mut admin).await["topics"],
            json!(["approvals", "activity"])
        );
        send(
            &mut admin,
            json!({"type": "subscribe", "topics": ["gossip"]}),
        )
        .await;
        assert_eq!(next(&mut admin).await["type"], "error");

        // A member (not an approver) authenticates by message, as browsers do.
        let member_key = api_key(&gateway.server.url, "member@example.com").await;
        let mut member = open(&gateway, None).await.unwrap();
        send(&mut member, json!({"type": "auth", "token": member_key})).await;
        assert_eq!(next(&mut member).await["user"], "member@example.com");
        send(
            &mut member,
            json!({"type": "subscribe", "topics": ["approvals", "activity"]}),
        )
        .await;
        next(&mut member).await;

        let blocked = gateway.blocked_call();
        let mut seen = Vec::new();
        let created = event(&mut admin, "approvals", "created", &mut seen).await;
        assert_eq!(
            (created["tool"].as_str(), created["state"].as_str()),
            (Some("up__add"), Some("pending"))
        );
        let id = created["id"].as_str().unwrap().to_owned();
        gateway.approve(&id).await;
        let decided = event(&mut admin, "approvals", "decided", &mut seen).await;
        assert_eq!(
            (decided["id"].as_str(), decided["state"].as_str()),
            (Some(id.as_str()), Some("approved"))
        );
        assert_eq!(returned(blocked).await, "201");
        // The audit trail streams too (admins only), for the admin's organization.
        let (_, me) = rest(
            Method::GET,
            &gateway.url("/api/v1/users/me"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
        let activity: Vec<&Value> = seen.iter().filter(|m| m["topic"] == "activity").collect();
        assert!(!activity.is_empty(), "{seen:?}");
        assert!(
            activity
                .iter()
                .all(|m| m["data"]["organization_id"] == me["organization_id"])
        );
        // Nor does the member see it over REST: listings show what the detail would.
        let (_, listed) = rest(
            Method::GET,
            &gateway.url("/api/v1/approval-requests"),
            Some(&member_key),
            None,
        )
        .await;
        assert_eq!(listed["items"], json!([]), "{listed}");
        let (_, listed) = rest(
            Method::GET,
            &gateway.url("/api/v1/approval-requests"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
        assert!(
            listed["items"]
                .as_array()
                .is_some_and(|items| !items.is_empty())
        );
        // The member saw none of it; their socket is alive and answers.
        send(&mut member, json!({"type": "ping"})).await;
        assert_eq!(next(&mut member).await["type"], "pong");

        // Upstream servers' state changes come on `system`.
        send(
            &mut admin,
            json!({"type": "subscribe", "topics": ["system"]}),
        )
        .await;
        let (_, servers) = rest(
            Method::GET,
            &gateway.url("/api/v1/mcp-servers"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
        let scan = format!(
            "/api/v1/mcp-servers/{}/scan",
            servers["items"][0]["id"].as_str().unwrap()
        );
        let (status, _) = rest(Method::POST, &gateway.url(&scan), Some(ADMIN_KEY), None).await;
        assert_eq!(status, 200);
        let scanned = event(&mut admin, "system", "upstream_tools_registered", &mut seen).await;
        assert_eq!(
            (
                scanned["server"].as_str(),
                scanned["tools"].as_u64().is_some()
            ),
            (Some("up"), true)
        );
    }
}

mod elicitation {
    use super::*;
    use common::connect_with;
    use rmcp::model::{
        ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationCapability,
    };
    use rmcp::service::RequestContext;
    use rmcp::{ClientHandler, ErrorData, RoleClient};
    use std::sync::{Arc, Mutex};

    /// A client that can be asked, and answers every question with `answer`.
    #[derive(Clone)]
    struct Asked {
        answer: (ElicitationAction, Value),
        questions: Arc<Mutex<Vec<String>>>,
    }

    impl ClientHandler for Asked {
        fn get_info(&self) -> rmcp::model::ClientConfig {
            let mut info = rmcp::model::ClientConfig::default();
            info.capabilities.elicitation = Some(ElicitationCapability::new());
            info
        }

        async fn create_elicitation(
            &self,
            request: ElicitRequestParams,
            _context: RequestContext<RoleClient>,
        ) -> Result<ElicitResult, ErrorData> {
            if let ElicitRequestParams::FormElicitationParams {
                message,
                requested_schema,
                ..
            } = request
            {
                assert_eq!(requested_schema.required, Some(vec!["decision".to_owned()]));
                self.questions.lock().unwrap().push(message);
            }
            let (action, content) = self.answer.clone();
            let mut result = ElicitResult::new(action);
            result.content = Some(content);
            Ok(result)
        }
    }

    async fn asked_client(
        gateway: &Gateway,
        action: ElicitationAction,
        content: Value,
    ) -> (
        rmcp::service::RunningService<RoleClient, Asked>,
        Arc<Mutex<Vec<String>>>,
    ) {
        let questions = Arc::new(Mutex::new(Vec::new()));
        let handler = Asked {
            answer: (action, content),
            questions: questions.clone(),
        };
        let client = connect_with(&gateway.url("/mcp/v1"), Some(&gateway.agent_key), handler)
            .await
            .unwrap();
        (client, questions)
    }

    async fn add(client: &rmcp::service::RunningService<RoleClient, Asked>) -> String {
        let Value::Object(arguments) = json!({"a": 300, "b": 1}) else {
            unreachable!()
        };
        let result = client
            .call_tool(rmcp::model::CallToolRequestParams::new("up__add").with_arguments(arguments))
            .await
            .unwrap();
        let texts: Vec<String> = result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        texts.join("\n")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_requesters_own_client_is_asked_inline_when_the_policy_allows_it() {
        let gateway = Gateway::start_with_policy(
            "approvers = [\"role:admin\", \"role:agent\"]\nallow_self_approval = true\nchannels = [\"elicitation\", \"web\"]",
            "",
        )
        .await;
        // Approved inline: the call runs, the vote is the requester's, with their comment.
        let (client, questions) = asked_client(
            &gateway,
            ElicitationAction::Accept,
            json!({"decision": "approve", "comment": "yes, mine"}),
        )
        .await;
        assert_eq!(add(&client).await, "301");
        let question = questions.lock().unwrap()[0].clone();
        assert!(
            question.contains("up__add") && question.contains("big-sums"),
            "{question}"
        );
        let (_, requests) = rest(
            Method::GET,
            &gateway.url("/api/v1/approval-requests?status=executed"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
        let vote = &requests["items"][0]["votes"][0];
        assert_eq!(
            (vote["approver_email"].as_str(), vote["comment"].as_str()),
            (Some("agent@example.com"), Some("yes, mine"))
        );
        client.cancel().await.unwrap();

        // Declined inline: the call is refused.
        let (client, _) = asked_client(&gateway, ElicitationAction::Decline, Value::Null).await;
        assert!(add(&client).await.to_lowercase().contains("declined"));
        client.cancel().await.unwrap();

        // Dismissed: the other channels decide (an admin, here).
        let (client, questions) =
            asked_client(&gateway, ElicitationAction::Cancel, Value::Null).await;
        let waiting = tokio::spawn(async move { add(&client).await });
        let id = gateway.pending_request_id().await;
        eventually("the requester is asked", async || {
            !questions.lock().unwrap().is_empty()
        })
        .await;
        gateway.approve(&id).await;
        assert_eq!(returned(waiting).await, "301");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nobody_is_asked_inline_when_the_policy_does_not_allow_self_approval() {
        let gateway = Gateway::start_with_policy(
            "approvers = [\"role:admin\", \"role:agent\"]\nchannels = [\"elicitation\", \"web\"]",
            "",
        )
        .await;
        let (client, questions) = asked_client(
            &gateway,
            ElicitationAction::Accept,
            json!({"decision": "approve"}),
        )
        .await;
        let waiting = tokio::spawn(async move { add(&client).await });
        let id = gateway.pending_request_id().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            questions.lock().unwrap().is_empty(),
            "the requester was asked"
        );
        gateway.approve(&id).await;
        assert_eq!(returned(waiting).await, "301");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_channel_is_retried_recorded_and_loses_nothing() {
    // Nothing listens where Slack's API should be.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let gateway = Gateway::start("slack", &slack_config(&nowhere, "max_attempts = 2")).await;
    let blocked = gateway.blocked_call();
    let (id, delivery) = eventually_some("the delivery gives up", async || {
        let (_, pending) = rest(
            Method::GET,
            &gateway.url("/api/v1/approval-requests?status=pending"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
        let id = pending["items"][0]["id"].as_str()?;
        let request = gateway.request(id).await;
        let delivery = request["channel_history"][0].clone();
        (delivery["status"] == "failed").then(|| (id.to_owned(), delivery))
    })
    .await;
    assert_eq!(
        (delivery["channel"].as_str(), delivery["attempts"].as_u64()),
        (Some("slack"), Some(2))
    );
    assert!(
        delivery["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{delivery}"
    );
    // The request is still there, and another way of deciding still works.
    gateway.approve(&id).await;
    assert_eq!(returned(blocked).await, "201");
}

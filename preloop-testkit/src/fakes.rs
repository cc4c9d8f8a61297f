//! Local stand-ins for the services approval channels talk to: one HTTP server answering as
//! Slack's Web API, Telegram's Bot API and Mattermost/Slack webhooks do (answers shaped as in
//! their public API documentation), recording every request; and an SMTP server that accepts
//! every message.

use axum::body::Bytes;
use axum::http::{HeaderMap, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// A request a fake received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path.
    pub path: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// The fake chat platforms' HTTP server.
#[derive(Debug)]
pub struct FakePlatform {
    /// Its base URL.
    pub url: String,
    received: mpsc::UnboundedReceiver<Received>,
    buffered: Vec<Received>,
    /// Updates the next `getUpdates` returns.
    pub updates: Arc<Mutex<VecDeque<Value>>>,
}

/// What the platform answers to a method, as its documentation shows.
fn answer(path: &str, body: &Value) -> Value {
    let method = path.rsplit('/').next().unwrap_or_default();
    let telegram_message = || {
        json!({"message_id": 42, "date": 1_700_000_000, "text": body["text"],
               "chat": {"id": -1_001_234_567_890_i64, "title": "Approvals", "type": "supergroup"}})
    };
    match method {
        "chat.postMessage" | "chat.update" => {
            json!({"ok": true, "channel": "C0APPROVALS", "ts": "1700000000.000100", "message": {"text": body["text"]}})
        }
        "sendMessage" | "editMessageText" => json!({"ok": true, "result": telegram_message()}),
        "answerCallbackQuery" => json!({"ok": true, "result": true}),
        "setWebhook" => json!({"ok": true, "result": true, "description": "Webhook was set"}),
        _ => Value::Null,
    }
}

impl FakePlatform {
    /// Starts it on a free port.
    pub async fn start() -> Self {
        let (sender, received) = mpsc::unbounded_channel();
        let updates: Arc<Mutex<VecDeque<Value>>> = Arc::default();
        let queue = updates.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let sender = sender.clone();
            let queue = queue.clone();
            async move {
                let path = uri.path().to_owned();
                if path.ends_with("/getUpdates") {
                    let pending: Vec<Value> = queue.lock().unwrap().drain(..).collect();
                    if pending.is_empty() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    return axum::Json(json!({"ok": true, "result": pending})).into_response();
                }
                let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let _ = sender.send(Received {
                    path: path.clone(),
                    headers,
                    body,
                });
                match answer(&path, &parsed) {
                    Value::Null => "ok".into_response(),
                    answer => axum::Json(answer).into_response(),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            received,
            buffered: Vec::new(),
            updates,
        }
    }

    /// The next request whose path ends with `suffix` (others are kept for later calls).
    pub async fn next(&mut self, suffix: &str) -> Received {
        if let Some(index) = self.buffered.iter().position(|r| r.path.ends_with(suffix)) {
            return self.buffered.remove(index);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let received = tokio::time::timeout_at(deadline, self.received.recv())
                .await
                .unwrap_or_else(|_| panic!("no request to `{suffix}` arrived"))
                .unwrap();
            if received.path.ends_with(suffix) {
                return received;
            }
            self.buffered.push(received);
        }
    }

    /// Whether a request to `suffix` arrives within `wait`.
    pub async fn quiet(&mut self, suffix: &str, wait: Duration) -> bool {
        if self.buffered.iter().any(|r| r.path.ends_with(suffix)) {
            return false;
        }
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(received)) = tokio::time::timeout_at(deadline, self.received.recv()).await
        {
            let matches = received.path.ends_with(suffix);
            self.buffered.push(received);
            if matches {
                return false;
            }
        }
        true
    }
}

/// A message the SMTP sink accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    /// `MAIL FROM`.
    pub from: String,
    /// `RCPT TO`s.
    pub to: Vec<String>,
    /// The message as sent (headers and body, dot-unstuffed).
    pub data: String,
}

/// Starts an SMTP server that accepts every message; returns its `smtp://` URL and the mails.
pub async fn smtp_sink() -> (String, mpsc::UnboundedReceiver<Mail>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("smtp://{}", listener.local_addr().unwrap());
    let (sender, mails) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let sender = sender.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink ESMTP ready\r\n").await.unwrap();
                let mut mail = Mail {
                    from: String::new(),
                    to: Vec::new(),
                    data: String::new(),
                };
                while let Ok(Some(line)) = lines.next_line().await {
                    let command = line.to_ascii_uppercase();
                    let reply: &[u8] = if command.starts_with("EHLO") {
                        b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
                    } else if command.starts_with("MAIL FROM:") {
                        mail.from = line[10..].trim().to_owned();
                        b"250 OK\r\n"
                    } else if command.starts_with("RCPT TO:") {
                        mail.to.push(line[8..].trim().to_owned());
                        b"250 OK\r\n"
                    } else if command == "DATA" {
                        write.write_all(b"354 go ahead\r\n").await.unwrap();
                        let mut data = String::new();
                        while let Ok(Some(line)) = lines.next_line().await {
                            if line == "." {
                                break;
                            }
                            data.push_str(line.strip_prefix('.').unwrap_or(&line));
                            data.push('\n');
                        }
                        mail.data = data;
                        let _ = sender.send(std::mem::replace(
                            &mut mail,
                            Mail {
                                from: String::new(),
                                to: Vec::new(),
                                data: String::new(),
                            },
                        ));
                        b"250 OK queued\r\n"
                    } else if command == "QUIT" {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        break;
                    } else {
                        b"250 OK\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (url, mails)
}

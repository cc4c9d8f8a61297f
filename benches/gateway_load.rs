//! Gateway load tool: an allowed `tools/call` through `preloop` versus directly to the same
//! upstream, in one run on loopback.
//!
//! ```text
//! cargo build --release -p preloop-server -p preloop-testkit --bins && cargo bench --bench gateway_load
//! ```
//!
//! Reports added latency (p50, p99) at a fixed rate of 1,000 calls/s (open loop: latency counts
//! from each call's scheduled start, so a stall is not hidden), saturation throughput of both
//! paths, the decision-to-response latency of a blocked call, and the gateway's idle RSS.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "a load tool fails loudly"
)]

use preloop_testkit as common;

use common::{ADMIN_KEY, Client, connect_url, start_gateway, start_upstream};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RATE: u64 = 1000;
const RATE_SECONDS: u64 = 5;
const SATURATION_SECONDS: u64 = 5;
const SESSIONS: usize = 8;
const PER_SESSION: usize = 4;
const BLOCKED_CALLS: usize = 50;
const SEQUENTIAL: usize = 2000;

async fn connect(url: &str, key: Option<&str>) -> Client {
    connect_url(url, key).await.unwrap()
}

async fn echo(client: &Client, tool: &str) {
    let Value::Object(arguments) = json!({"text": "ping"}) else {
        unreachable!()
    };
    let result = client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true));
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Open-loop calls at `RATE` per second (each call starts on schedule whether or not earlier
/// ones have finished); latency from each call's start.
async fn fixed_rate(client: Arc<Client>, tool: &'static str) -> Vec<Duration> {
    let interval = Duration::from_nanos(1_000_000_000 / RATE);
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for i in 0..RATE * RATE_SECONDS {
        let scheduled = start + interval * u32::try_from(i).unwrap();
        tokio::time::sleep_until(scheduled.into()).await;
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            // Timed from the actual send: tokio's timer fires up to a millisecond late, which
            // would otherwise add the same noise to both paths.
            let sent = Instant::now();
            echo(&client, tool).await;
            sent.elapsed()
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.push(task.await.unwrap());
    }
    latencies.sort();
    latencies
}

/// Latencies of calls made one after another.
async fn sequential(client: &Client, tool: &str) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let sent = Instant::now();
        echo(client, tool).await;
        latencies.push(sent.elapsed());
    }
    latencies.sort();
    latencies
}

/// Calls per second with `SESSIONS` x `PER_SESSION` workers calling back to back.
async fn saturation(clients: &[Arc<Client>], tool: &'static str) -> f64 {
    let stop = Instant::now() + Duration::from_secs(SATURATION_SECONDS);
    let mut workers = Vec::new();
    for client in clients {
        for _ in 0..PER_SESSION {
            let client = client.clone();
            workers.push(tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < stop {
                    echo(&client, tool).await;
                    done += 1;
                }
                done
            }));
        }
    }
    let mut total = 0;
    for worker in workers {
        total += worker.await.unwrap();
    }
    total as f64 / SATURATION_SECONDS as f64
}

/// A memory figure of `/proc/{pid}/status` (`VmRSS`, `RssAnon`, `RssFile`), in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// A blocked `request_approval` call; the time from sending the REST decision to the MCP response.
async fn blocked_call(gateway: &str, client: &Arc<Client>, http: &reqwest::Client) -> Duration {
    let caller = {
        let client = client.clone();
        tokio::spawn(async move {
            let Value::Object(arguments) =
                json!({"operation": "load test", "approval_policy": "now"})
            else {
                unreachable!()
            };
            client
                .call_tool(CallToolRequestParams::new("request_approval").with_arguments(arguments))
                .await
                .unwrap();
            Instant::now()
        })
    };
    let id = loop {
        let list: Value = http
            .get(format!("{gateway}/api/v1/approval-requests?status=pending"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(id) = list["items"][0]["id"].as_str() {
            break id.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let decided = Instant::now();
    let response = http
        .post(format!("{gateway}/api/v1/approval-requests/{id}/approve"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    caller.await.unwrap().saturating_duration_since(decided)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let upstream = start_upstream();
        let data_dir = tempfile::tempdir().unwrap();
        let config = format!(
                r#"
[server]
requests_per_second = 1000000
burst = 1000000

[[mcp_servers]]
name = "up"
transport = "http"
url = "{}"
keep_alive = true

[[approval_policies]]
name = "now"
approvers = ["role:admin"]
mode = "blocking"
allow_self_approval = true

[policy]
default = "allow"

[[policy.rules]]
tools = ["*__delete_*"]
action = "deny"

[[policy.rules]]
tools = ["up__*"]
when = 'has(args.text) && args.text == "forbidden"'
action = "deny"
"#,
            upstream.url
        );
        let gateway = start_gateway(data_dir.path(), &config, &[("RUST_LOG", "warn")]);
        let gateway_mcp = format!("{}/mcp/v1", gateway.url);
        let probe = connect(&gateway_mcp, Some(ADMIN_KEY)).await;
        while !probe.list_all_tools().await.unwrap().iter().any(|t| t.name == "up__echo") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle_rss = rss_kib(gateway.child.id());
        drop(probe);

        let direct = Arc::new(connect(&upstream.url, None).await);
        let through = Arc::new(connect(&gateway_mcp, Some(ADMIN_KEY)).await);
        for _ in 0..500 {
            echo(&direct, "echo").await;
            echo(&through, "up__echo").await;
        }
        let direct_sequential = sequential(&direct, "echo").await;
        let gateway_sequential = sequential(&through, "up__echo").await;
        println!("sequential, one call at a time ({SEQUENTIAL} calls):");
        for (label, l) in [("direct ", &direct_sequential), ("gateway", &gateway_sequential)] {
            println!("  {label}: p50 {:.3} ms, p99 {:.3} ms", ms(percentile(l, 0.5)), ms(percentile(l, 0.99)));
        }
        println!(
            "  added by the gateway: p50 {:.3} ms, p99 {:.3} ms",
            ms(percentile(&gateway_sequential, 0.5)) - ms(percentile(&direct_sequential, 0.5)),
            ms(percentile(&gateway_sequential, 0.99)) - ms(percentile(&direct_sequential, 0.99)),
        );
        let direct_rate = fixed_rate(direct.clone(), "echo").await;
        let gateway_rate = fixed_rate(through.clone(), "up__echo").await;
        println!("fixed rate {RATE} calls/s for {RATE_SECONDS} s (open loop):");
        for (label, l) in [("direct ", &direct_rate), ("gateway", &gateway_rate)] {
            println!("  {label}: p50 {:.3} ms, p99 {:.3} ms", ms(percentile(l, 0.5)), ms(percentile(l, 0.99)));
        }
        println!(
            "  added by the gateway: p50 {:.3} ms, p99 {:.3} ms",
            ms(percentile(&gateway_rate, 0.5)) - ms(percentile(&direct_rate, 0.5)),
            ms(percentile(&gateway_rate, 0.99)) - ms(percentile(&direct_rate, 0.99)),
        );

        let mut direct_clients = Vec::new();
        let mut gateway_clients = Vec::new();
        for _ in 0..SESSIONS {
            direct_clients.push(Arc::new(connect(&upstream.url, None).await));
            gateway_clients.push(Arc::new(connect(&gateway_mcp, Some(ADMIN_KEY)).await));
        }
        let direct_saturation = saturation(&direct_clients, "echo").await;
        let gateway_saturation = saturation(&gateway_clients, "up__echo").await;
        println!(
            "saturation ({SESSIONS} sessions x {PER_SESSION} in flight): direct {direct_saturation:.0} calls/s, gateway {gateway_saturation:.0} calls/s ({:.0}% of direct)",
            100.0 * gateway_saturation / direct_saturation
        );

        let http = reqwest::Client::new();
        let mut blocked = Vec::new();
        for _ in 0..BLOCKED_CALLS {
            blocked.push(blocked_call(&gateway.url, &through, &http).await);
        }
        blocked.sort();
        println!(
            "blocked call, REST decision to MCP response ({BLOCKED_CALLS} calls): p50 {:.2} ms, p99 {:.2} ms",
            ms(percentile(&blocked, 0.5)),
            ms(percentile(&blocked, 0.99))
        );
        println!("gateway idle RSS: {:.1} MiB (after discovering the upstream, before load)", idle_rss as f64 / 1024.0);
        println!("gateway RSS after the run: {:.1} MiB", rss_kib(gateway.child.id()) as f64 / 1024.0);
        // The same load again: memory that keeps growing run after run would be a leak.
        let again = saturation(&gateway_clients, "up__echo").await;
        let pid = gateway.child.id();
        println!(
            "gateway RSS after a second saturation run ({again:.0} calls/s): {:.1} MiB \
             (anonymous {:.1} MiB, file-backed {:.1} MiB: SQLite maps the database file)",
            rss_kib(pid) as f64 / 1024.0,
            status_kib(pid, "RssAnon") as f64 / 1024.0,
            status_kib(pid, "RssFile") as f64 / 1024.0,
        );
    });
}

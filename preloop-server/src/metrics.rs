//! Prometheus metrics, served at `/metrics` in the text format.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use std::sync::OnceLock;
use std::time::Duration;

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    tool_calls: IntCounterVec,
    approval_wait: HistogramVec,
    upstream_calls: HistogramVec,
    http_requests: IntCounterVec,
    pending_approvals: IntGauge,
    tracker_syncs: IntCounterVec,
    tracker_issues: IntCounterVec,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let tool_calls = IntCounterVec::new(
        Opts::new("preloop_tool_calls_total", "Governed tool calls by outcome"),
        &["outcome"],
    )?;
    let approval_wait = HistogramVec::new(
        HistogramOpts::new(
            "preloop_approval_wait_seconds",
            "Time a held call waited for its decision",
        )
        .buckets(vec![0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0]),
        &["outcome"],
    )?;
    let upstream_calls = HistogramVec::new(
        HistogramOpts::new(
            "preloop_upstream_call_seconds",
            "Upstream MCP tool call latency",
        )
        .buckets(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
        ]),
        &["server", "result"],
    )?;
    let http_requests = IntCounterVec::new(
        Opts::new(
            "preloop_http_requests_total",
            "HTTP requests by route and status",
        ),
        &["route", "status"],
    )?;
    registry.register(Box::new(tool_calls.clone()))?;
    registry.register(Box::new(approval_wait.clone()))?;
    registry.register(Box::new(upstream_calls.clone()))?;
    let pending_approvals = IntGauge::new(
        "preloop_pending_approvals",
        "Approval requests waiting for a decision",
    )?;
    registry.register(Box::new(http_requests.clone()))?;
    registry.register(Box::new(pending_approvals.clone()))?;
    let tracker_syncs = IntCounterVec::new(
        Opts::new(
            "preloop_tracker_syncs_total",
            "Tracker synchronizations by result",
        ),
        &["tracker", "result"],
    )?;
    let tracker_issues = IntCounterVec::new(
        Opts::new(
            "preloop_tracker_issues_synced_total",
            "Issues indexed by synchronizations",
        ),
        &["tracker"],
    )?;
    registry.register(Box::new(tracker_syncs.clone()))?;
    registry.register(Box::new(tracker_issues.clone()))?;
    Ok(Metrics {
        registry,
        tool_calls,
        approval_wait,
        upstream_calls,
        http_requests,
        pending_approvals,
        tracker_syncs,
        tracker_issues,
    })
}

/// The process's metrics (`None` only if the metric definitions were invalid, which tests catch).
pub fn global() -> Option<&'static Metrics> {
    static METRICS: OnceLock<Option<Metrics>> = OnceLock::new();
    METRICS.get_or_init(|| build().ok()).as_ref()
}

/// Counts a governed call's outcome (`executed`, `denied`, `pending_approval`, ...).
pub fn tool_call(outcome: &str) {
    if let Some(m) = global() {
        m.tool_calls.with_label_values(&[outcome]).inc();
    }
}

/// Records how long a held call waited.
pub fn approval_wait(outcome: &str, waited: Duration) {
    if let Some(m) = global() {
        m.approval_wait
            .with_label_values(&[outcome])
            .observe(waited.as_secs_f64());
    }
}

/// Records an upstream call.
pub fn upstream_call(server: &str, result: &str, took: Duration) {
    if let Some(m) = global() {
        m.upstream_calls
            .with_label_values(&[server, result])
            .observe(took.as_secs_f64());
    }
}

/// Counts an HTTP request.
pub fn http_request(route: &str, status: u16) {
    if let Some(m) = global() {
        m.http_requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
    }
}

/// Sets the pending-approvals gauge (refreshed from the store at each scrape).
pub fn pending_approvals(count: u64) {
    if let Some(m) = global() {
        m.pending_approvals
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
}

/// Counts a tracker's synchronization (`ok`, `failed`).
pub fn tracker_sync(tracker: &str, result: &str) {
    if let Some(m) = global() {
        m.tracker_syncs.with_label_values(&[tracker, result]).inc();
    }
}

/// Counts issues a tracker's synchronization indexed.
pub fn tracker_issues(tracker: &str, indexed: u64) {
    if let Some(m) = global() {
        m.tracker_issues
            .with_label_values(&[tracker])
            .inc_by(indexed);
    }
}

/// The text exposition of every metric.
pub fn render() -> String {
    let mut buffer = Vec::new();
    if let Some(m) = global() {
        let _ = TextEncoder::new().encode(&m.registry.gather(), &mut buffer);
    }
    String::from_utf8(buffer).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_defined_and_rendered() {
        assert!(build().is_ok());
        tool_call("executed");
        upstream_call("docs", "ok", Duration::from_millis(3));
        http_request("/mcp/v1", 200);
        approval_wait("executed", Duration::from_secs(2));
        pending_approvals(3);
        let text = render();
        for name in [
            "preloop_tool_calls_total{outcome=\"executed\"} 1",
            "preloop_upstream_call_seconds_count{result=\"ok\",server=\"docs\"} 1",
            "preloop_http_requests_total{route=\"/mcp/v1\",status=\"200\"} 1",
            "preloop_approval_wait_seconds_count{outcome=\"executed\"} 1",
            "preloop_pending_approvals 3",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}

// The Preloop console: a small single-page app over the REST API and the unified WebSocket.
// No framework and no build step: the server embeds these files as they are. Every piece of
// data reaches the page through `h()`, which sets text, never HTML.

const app = document.getElementById("app");
const api = "/api/v1";

// ---------------------------------------------------------------------------------------------
// DOM

function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "value") element.value = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function show(...children) {
  app.replaceChildren(...children.flat().filter((child) => child !== undefined && child !== null && child !== false));
}

function when(timestamp) {
  return timestamp ? new Date(timestamp).toLocaleString() : "";
}

function stateBadge(state) {
  return h("span", { class: `state ${state}`, "data-state": state }, state);
}

function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error.message || String(error));
}

// ---------------------------------------------------------------------------------------------
// Session: tokens in sessionStorage (gone with the tab), refreshed when the access token expires.

const session = {
  get access() { return sessionStorage.getItem("preloop.access"); },
  get refresh() { return sessionStorage.getItem("preloop.refresh"); },
  store(pair) {
    sessionStorage.setItem("preloop.access", pair.access_token);
    sessionStorage.setItem("preloop.refresh", pair.refresh_token);
  },
  clear() {
    sessionStorage.removeItem("preloop.access");
    sessionStorage.removeItem("preloop.refresh");
  },
};

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function request(method, path, body, retried = false) {
  const headers = { Accept: "application/json" };
  if (session.access) headers.Authorization = `Bearer ${session.access}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(api + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && !retried && session.refresh) {
    if (await refreshTokens()) return request(method, path, body, true);
  }
  if (response.status === 401) {
    session.clear();
    location.hash = "#/signin";
    throw new ApiError(401, "Please sign in again.");
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    throw new ApiError(response.status, data?.error?.message || `${response.status} ${response.statusText}`);
  }
  return data;
}

async function refreshTokens() {
  const response = await fetch(`${api}/auth/refresh`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: session.refresh }),
  });
  if (!response.ok) return false;
  session.store(await response.json());
  live.restart();
  return true;
}

const get = (path) => request("GET", path);
const post = (path, body) => request("POST", path, body ?? {});
const put = (path, body) => request("PUT", path, body);
const del = (path) => request("DELETE", path);

// ---------------------------------------------------------------------------------------------
// Live updates over the unified WebSocket: the console subscribes to approvals and issues, and
// the page it shows re-renders when one of its own changes (each page's listener checks the topic).

const live = {
  socket: null,
  listeners: new Set(),
  retry: 1000,
  start() {
    if (this.socket || !session.access) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${api}/ws/unified`);
    this.socket = socket;
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: "auth", token: session.access }));
      socket.send(JSON.stringify({ type: "subscribe", topics: ["approvals", "issues"] }));
    };
    socket.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.type === "subscribed") {
        this.retry = 1000;
        setLive(true);
      }
      if (data.type === "event") for (const listener of this.listeners) listener(data);
    };
    socket.onclose = async (closed) => {
      setLive(false);
      if (this.socket !== socket) return;
      this.socket = null;
      // 4401: the access token expired (or was revoked); a refreshed one reconnects at once.
      if (closed.code === 4401 && session.refresh) {
        if (await refreshTokens()) return;
        session.clear();
        location.hash = "#/signin";
        return;
      }
      if (session.access) setTimeout(() => this.start(), this.retry);
      this.retry = Math.min(this.retry * 2, 30000);
    };
  },
  restart() {
    const socket = this.socket;
    this.socket = null;
    socket?.close();
    this.start();
  },
  stop() {
    const socket = this.socket;
    this.socket = null;
    socket?.close();
  },
};

function setLive(on) {
  const badge = document.getElementById("live");
  badge.textContent = on ? "live" : "offline";
  badge.classList.toggle("on", on);
}

// ---------------------------------------------------------------------------------------------
// Pages

async function signIn() {
  document.getElementById("top").hidden = true;
  const failure = h("div");
  const form = h("form", {
    class: "card signin",
    onsubmit: async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const response = await fetch(`${api}/auth/token`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ email: data.get("email"), password: data.get("password") }),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        failure.replaceChildren(errorBox(new Error(body?.error?.message || "Sign-in failed.")));
        return;
      }
      session.store(body);
      location.hash = "#/approvals";
    },
  },
    h("h1", {}, "Sign in to Preloop"),
    h("label", { for: "email" }, "E-mail"),
    h("input", { id: "email", name: "email", type: "email", autocomplete: "username", required: true }),
    h("label", { for: "password" }, "Password"),
    h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true }),
    failure,
    h("div", { class: "buttons" }, h("button", { class: "primary", type: "submit", id: "signin" }, "Sign in")),
  );
  show(form);
}

async function approvals(params) {
  const status = params.get("status") ?? "pending";
  const choose = h("select", {
    id: "status-filter",
    onchange: () => { location.hash = `#/approvals?status=${choose.value}`; },
  }, ["pending", "approved", "executed", "declined", "expired", "cancelled", "failed", ""].map((s) =>
    h("option", { value: s, selected: s === status }, s || "all")));
  const body = h("tbody");
  const table = h("table", { class: "list", id: "inbox" },
    h("thead", {}, h("tr", {}, h("th", {}, "Tool"), h("th", {}, "Requested by"), h("th", {}, "State"), h("th", {}, "Created"), h("th", {}, "Expires"))),
    body);
  const load = async () => {
    const query = status ? `?status=${status}` : "";
    const { items } = await get(`/approval-requests${query}`);
    body.replaceChildren(...(items.length ? items.map((r) =>
      h("tr", { class: "clickable", "data-request": r.id, onclick: () => { location.hash = `#/approvals/${r.id}`; } },
        h("td", {}, h("a", { href: `#/approvals/${r.id}` }, r.tool.exposed_name)),
        h("td", {}, r.requester.email || r.requester.id),
        h("td", {}, stateBadge(r.state)),
        h("td", {}, when(r.created_at)),
        h("td", {}, when(r.expires_at)))) :
      [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "Nothing here."))]));
  };
  show(h("h1", {}, "Approvals"), h("label", {}, "Show", choose), h("p"), table);
  await load();
  return (event) => event.topic === "approvals" && load();
}

async function approval(id) {
  const request = await get(`/approval-requests/${id}`);
  const policy = request.policy;
  const pending = request.state === "pending";
  const notice = h("div");
  const facts = h("table", { class: "facts" },
    h("tr", {}, h("th", {}, "State"), h("td", { id: "state" }, stateBadge(request.state), request.resolution ? ` — ${request.resolution}` : "")),
    h("tr", {}, h("th", {}, "Tool"), h("td", {}, request.tool.exposed_name)),
    h("tr", {}, h("th", {}, "Server"), h("td", {}, request.tool.server)),
    h("tr", {}, h("th", {}, "Requested by"), h("td", {}, request.requester.email || request.requester.id)),
    h("tr", {}, h("th", {}, "Matched rule"), h("td", {}, request.matched_rule || "—")),
    request.context?.operation && h("tr", {}, h("th", {}, "Operation"), h("td", {}, request.context.operation)),
    request.context?.reasoning && h("tr", {}, h("th", {}, "Reasoning"), h("td", {}, request.context.reasoning)),
    h("tr", {}, h("th", {}, "Approval policy"), h("td", {}, `${policy.name} (quorum ${policy.quorum})`)),
    h("tr", {}, h("th", {}, "Created"), h("td", {}, when(request.created_at))),
    h("tr", {}, h("th", {}, "Expires"), h("td", {}, when(request.expires_at))));
  const argumentsText = JSON.stringify(request.effective_arguments, null, 2);
  const editable = pending && policy.allow_edit;
  const argumentsField = editable ?
    h("textarea", { id: "arguments", class: "code", spellcheck: "false", "aria-label": "Arguments" }, argumentsText) :
    h("pre", { id: "arguments" }, argumentsText);
  const votes = h("table", { class: "list" },
    h("thead", {}, h("tr", {}, h("th", {}, "Approver"), h("th", {}, "Vote"), h("th", {}, "Comment"), h("th", {}, "When"))),
    h("tbody", {}, request.votes.length ? request.votes.map((v) => h("tr", {},
      h("td", {}, v.approver_email || v.approver_id), h("td", {}, v.decision), h("td", {}, v.comment || ""), h("td", {}, when(v.at)))) :
      h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No votes yet."))));
  const history = h("table", { class: "list", id: "channel-history" },
    h("thead", {}, h("tr", {}, h("th", {}, "Channel"), h("th", {}, "Message"), h("th", {}, "To"), h("th", {}, "Status"), h("th", {}, "Attempts"))),
    h("tbody", {}, (request.channel_history || []).length ? request.channel_history.map((m) => h("tr", {},
      h("td", {}, m.channel), h("td", {}, m.event), h("td", {}, m.recipient),
      h("td", {}, m.status, m.last_error ? h("div", { class: "error" }, m.last_error) : ""), h("td", {}, m.attempts))) :
      h("tr", {}, h("td", { colspan: 5, class: "muted" }, "Only in this inbox."))));
  const output = request.output ? h("pre", { id: "output" }, JSON.stringify(request.output, null, 2)) : null;

  let decision = null;
  if (pending) {
    const comment = h("textarea", { id: "comment", "aria-label": "Comment", placeholder: policy.require_reason ? "A reason is required" : "Optional comment" });
    const maxGrant = policy.grant?.max_duration;
    const grant = maxGrant ? h("input", { id: "grant-minutes", type: "number", min: "1", placeholder: `up to ${maxGrant}` }) : null;
    const decide = async (kind) => {
      const body = { comment: comment.value.trim() || undefined };
      if (kind === "approve" && editable) {
        try {
          const edited = JSON.parse(argumentsField.value);
          if (JSON.stringify(edited) !== JSON.stringify(request.effective_arguments)) body.approved_arguments = edited;
        } catch (error) {
          notice.replaceChildren(errorBox(new Error(`The arguments are not valid JSON: ${error.message}`)));
          return;
        }
      }
      if (kind === "approve" && grant?.value) body.grant_minutes = Number(grant.value);
      try {
        await post(`/approval-requests/${id}/${kind}`, body);
        onLiveEvent = await approval(id);
      } catch (error) {
        notice.replaceChildren(errorBox(error));
      }
    };
    decision = h("div", { class: "card" },
      h("h2", {}, "Decide"),
      h("label", { for: "comment" }, "Comment"), comment,
      grant && [h("label", { for: "grant-minutes" }, "Also allow this tool for the requester for (minutes)"), grant],
      h("div", { class: "buttons" },
        h("button", { class: "approve", id: "approve", onclick: () => decide("approve") }, editable ? "Approve (with edits)" : "Approve"),
        h("button", { class: "decline", id: "decline", onclick: () => decide("decline") }, "Decline")));
  }
  show(
    h("p", {}, h("a", { href: "#/approvals" }, "← Approvals")),
    h("h1", {}, "Request ", h("code", {}, request.tool.exposed_name)),
    notice,
    h("div", { class: "card" }, facts),
    h("h2", {}, editable ? "Arguments (editable; checked against the tool's schema)" : "Arguments"),
    argumentsField,
    output && [h("h2", {}, "Result"), output],
    request.error && h("p", { class: "error" }, request.error),
    decision,
    h("h2", {}, "Votes"), votes,
    h("h2", {}, "Channel history"), history,
  );
  // An approved call is running: look again shortly (its end is not a live event).
  if (request.state === "approved" || request.state === "executing") {
    const shown = location.hash;
    setTimeout(() => { if (location.hash === shown) route(); }, 1000);
  }
  // Re-read when this request changes, unless the approver is typing a decision.
  return (event) => event.topic === "approvals" && event.data.id === id && !document.activeElement?.matches("textarea, input") && approval(id);
}

async function audit(params) {
  const type = params.get("type") || "";
  const subject = params.get("subject") || "";
  const after = params.get("after") || "0";
  const query = new URLSearchParams({ after, limit: "50" });
  if (type) query.set("type", type);
  if (subject) query.set("subject", subject);
  const page = await get(`/audit?${query}`);
  const verdict = h("div", { id: "verdict" });
  const filters = h("form", {
    class: "row",
    onsubmit: (event) => {
      event.preventDefault();
      const data = new FormData(filters);
      const next = new URLSearchParams();
      for (const [k, v] of data) if (v) next.set(k, v);
      location.hash = `#/audit?${next}`;
    },
  },
    h("div", {}, h("label", { for: "type" }, "Event type"), h("input", { id: "type", name: "type", value: type, placeholder: "decision, executed, …" })),
    h("div", {}, h("label", { for: "subject" }, "Call, request or user id"), h("input", { id: "subject", name: "subject", value: subject })),
    h("div", {}, h("button", { type: "submit" }, "Filter")));
  show(
    h("h1", {}, "Audit log"),
    h("div", { class: "buttons" }, h("button", {
      id: "verify",
      onclick: async () => {
        const result = await get("/audit/verify");
        verdict.replaceChildren(result.intact ?
          h("p", { class: "notice" }, `The chain is intact: ${result.events} events.`) :
          h("p", { class: "error" }, `The chain is broken: ${result.problem}`));
      },
    }, "Verify the chain")),
    verdict,
    filters,
    h("p"),
    h("table", { class: "list" },
      h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "When"), h("th", {}, "Event"))),
      h("tbody", {}, page.items.map((e) => h("tr", {},
        h("td", {}, e.sequence), h("td", {}, when(e.timestamp)),
        h("td", {}, h("details", {}, h("summary", {}, e.kind.type || Object.keys(e.kind)[0] || "event"), h("pre", {}, JSON.stringify(e.kind, null, 2)))))))),
    page.next ? h("p", {}, h("a", { href: `#/audit?${new URLSearchParams({ type, subject, after: page.next })}` }, "Older events →")) : null,
  );
}

async function servers() {
  const { items } = await get("/mcp-servers");
  const notice = h("div");
  const act = (work) => async () => {
    try { await work(); await servers(); } catch (error) { notice.replaceChildren(errorBox(error)); }
  };
  const cards = await Promise.all(items.map(async (server) => {
    const { items: tools } = await get(`/mcp-servers/${server.id}/tools`).catch(() => ({ items: [] }));
    const entry = { ...server, enabled: !server.enabled };
    for (const field of ["id", "created_at", "last_scanned_at"]) delete entry[field];
    return h("div", { class: "card", "data-server": server.name },
      h("h2", {}, server.name, " ", h("span", { class: "muted" }, server.transport === "http" ? server.url : server.command)),
      h("p", {}, server.enabled ? "Enabled" : "Disabled", server.last_scanned_at ? ` · scanned ${when(server.last_scanned_at)}` : ""),
      h("div", { class: "buttons" },
        h("button", { onclick: act(() => put(`/mcp-servers/${server.id}`, entry)) }, server.enabled ? "Disable" : "Enable"),
        h("button", { onclick: act(() => post(`/mcp-servers/${server.id}/scan`)) }, "Scan")),
      h("table", { class: "list" },
        h("thead", {}, h("tr", {}, h("th", {}, "Tool"), h("th", {}, "Description"), h("th", {}, ""))),
        h("tbody", {}, tools.map((tool) => h("tr", {},
          h("td", {}, tool.name), h("td", {}, tool.description || ""),
          h("td", {}, h("button", {
            onclick: act(() => put(`/tool-configurations/${encodeURIComponent(tool.name)}`, { enabled: !tool.enabled })),
          }, tool.enabled ? "Disable" : "Enable")))))));
  }));
  show(h("h1", {}, "Servers and tools"), notice, ...(cards.length ? cards : [h("p", { class: "muted" }, "No upstream servers.")]));
}

async function policies() {
  const document_ = await get("/policy");
  const editor = h("textarea", { id: "policy", class: "code", spellcheck: "false", "aria-label": "Policy document" }, JSON.stringify(document_, null, 2));
  editor.style.minHeight = "24rem";
  const saved = h("div");
  const tool = h("input", { id: "test-tool", placeholder: "server__tool" });
  const args = h("textarea", { id: "test-arguments", class: "code", "aria-label": "Arguments" }, "{}");
  const explanation = h("div");
  show(
    h("h1", {}, "Policies"),
    h("p", { class: "muted" }, "The organization's rules, default action and approval policies. Saving checks every rule's CEL and every approval policy first."),
    editor, saved,
    h("div", { class: "buttons" }, h("button", {
      class: "primary", id: "save-policy",
      onclick: async () => {
        try {
          await put("/policy", JSON.parse(editor.value));
          saved.replaceChildren(h("p", { class: "notice" }, "Saved."));
        } catch (error) {
          saved.replaceChildren(errorBox(error));
        }
      },
    }, "Validate and save")),
    h("h2", {}, "Test a hypothetical call"),
    h("label", { for: "test-tool" }, "Tool"), tool,
    h("label", { for: "test-arguments" }, "Arguments (JSON)"), args,
    h("div", { class: "buttons" }, h("button", {
      id: "explain",
      onclick: async () => {
        try {
          const result = await post("/access-rules/test", { tool: tool.value, arguments: JSON.parse(args.value) });
          explanation.replaceChildren(h("pre", { id: "explanation" }, JSON.stringify(result, null, 2)));
        } catch (error) {
          explanation.replaceChildren(errorBox(error));
        }
      },
    }, "Explain")),
    explanation,
  );
}

async function keys() {
  const { items } = await get("/api-keys");
  const created = h("div");
  const form = h("form", {
    class: "card",
    onsubmit: async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const scopes = String(data.get("scopes") || "").split(",").map((s) => s.trim()).filter(Boolean);
      try {
        const key = await post("/api-keys", { name: data.get("name"), scopes });
        await keys();
        app.prepend(h("div", { class: "notice" }, "Copy the key now; it is not shown again: ", h("div", { class: "secret", id: "new-key" }, key.secret)));
      } catch (error) {
        created.replaceChildren(errorBox(error));
      }
    },
  },
    h("h2", {}, "New key"),
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "key-name" }, "Name"), h("input", { id: "key-name", name: "name", required: true })),
      h("div", {}, h("label", { for: "key-scopes" }, "Roles it may use (comma-separated; empty: all yours)"), h("input", { id: "key-scopes", name: "scopes" })),
      h("div", {}, h("button", { class: "primary", type: "submit", id: "create-key" }, "Create"))),
    created);
  show(
    h("h1", {}, "API keys"),
    form,
    h("table", { class: "list" },
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Prefix"), h("th", {}, "Roles"), h("th", {}, "Last used"), h("th", {}, ""))),
      h("tbody", {}, items.map((key) => h("tr", {},
        h("td", {}, key.name), h("td", {}, h("code", {}, key.prefix)), h("td", {}, key.scopes.join(", ") || "all"),
        h("td", {}, when(key.last_used_at)),
        h("td", {}, key.revoked ? "revoked" : h("button", {
          class: "danger",
          onclick: async () => { if (confirm(`Revoke ${key.name}?`)) { await del(`/api-keys/${key.id}`); await keys(); } },
        }, "Revoke")))))),
  );
}

// ---------------------------------------------------------------------------------------------
// Issue trackers (admins): each one's status and webhook URL, "Sync now" with live progress, and
// a form to connect another. Tokens and webhook secrets are write-only: the API never returns them.

const trackerKinds = {
  github: { url: "https://api.github.com", webhook: "content type application/json; events: Issues, Issue comments" },
  gitlab: { url: "https://gitlab.com", webhook: "trigger: Issues events, Comments; the secret goes in Secret token" },
  jira: { url: "", webhook: "events: issue created, updated, deleted, comment created" },
};

// Trackers whose "Sync now" the page is following, by id: each one's `sync.*` events go to its
// card (and a live refresh of the list, which would interrupt it, waits).
const syncing = new Map();

const pause = (milliseconds) => new Promise((resolve) => setTimeout(resolve, milliseconds));

function duration(seconds) {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

const plural = (count, noun) => `${count} ${noun}${count === 1 ? "" : "s"}`;

function progressText(running) {
  return `Synchronizing ${running.project}: ${plural(running.issues, "issue")}, ${plural(running.pages, "page")} so far (since ${when(running.started_at)})`;
}

function projectStatus(tracker) {
  return tracker.projects.map((key) => {
    const record = tracker.project_status.find((p) => p.key === key);
    return h("div", { "data-project": key },
      h("code", {}, key),
      h("span", { class: "muted" }, record?.last_synced_at ? ` · synced ${when(record.last_synced_at)}` : " · not synced yet"),
      record?.last_error && h("div", { class: "error" }, record.last_error));
  });
}

function trackerFacts(tracker) {
  const row = (label, field, ...value) => h("tr", {}, h("th", {}, label), h("td", { "data-field": field }, ...value));
  return h("table", { class: "facts" },
    row("Kind", "kind", tracker.kind),
    row("URL", "url", tracker.url),
    tracker.username && row("Jira username", "username", tracker.username),
    row("Projects", "projects", projectStatus(tracker)),
    row("Synchronized every", "interval", duration(tracker.sync_interval_seconds), tracker.enabled ? "" : " (disabled)"),
    row("Last sync", "last-sync", tracker.last_synced_at ? when(tracker.last_synced_at) : "never"),
    row("Issues indexed", "issues-indexed", tracker.issues_indexed),
    row("Last error", "last-error", tracker.last_error ? h("span", { class: "error" }, tracker.last_error) : "none"),
    row("Synchronization", "running", tracker.running ? progressText(tracker.running) : "not running"));
}

function webhookField(tracker) {
  const field = h("input", { id: `webhook-${tracker.id}`, class: "webhook-url", readonly: true, value: tracker.webhook_url });
  const copied = h("span", { class: "muted", "aria-live": "polite" });
  const copy = async () => {
    field.select();
    try {
      await navigator.clipboard.writeText(tracker.webhook_url);
    } catch {
      document.execCommand("copy");
    }
    copied.textContent = " Copied.";
  };
  const secret = tracker.has_webhook_secret ?
    "Deliveries are checked against the webhook secret you set (it is not shown again); give the tracker the same secret." :
    "No webhook secret is set, so deliveries are refused: connect the tracker again with one to use webhooks.";
  return h("div", {},
    h("label", { for: field.id }, "Webhook URL"),
    h("div", { class: "row" }, field, h("div", { class: "copy" }, h("button", { type: "button", onclick: copy }, "Copy"), copied)),
    h("p", { class: "muted hint" }, `${secret} In the tracker's settings: ${trackerKinds[tracker.kind]?.webhook ?? ""}.`));
}

// How a followed synchronization ended: its `sync.finished` event (if it arrived) and the
// tracker's status afterwards.
function syncOutcome(finished, startedHere, tracker) {
  const failures = finished?.failures ?? [];
  const error = finished ? finished.error : tracker.last_error;
  let done = "Another synchronization of this tracker was running; it has finished.";
  if (startedHere) {
    done = finished?.issues === undefined ? "Synchronized." :
      `Synchronized: ${plural(finished.issues, "issue")} read over ${plural(finished.pages, "page")}.`;
  }
  return h("div", { class: "sync-done", "data-issues-indexed": tracker.issues_indexed },
    h("p", { class: failures.length || error ? "error" : "notice" }, `${done} ${plural(tracker.issues_indexed, "issue")} indexed.`),
    failures.map((f) => h("p", { class: "error", role: "alert" }, `${f.project}: ${f.error}`)),
    error && h("p", { class: "error", role: "alert" }, error));
}

// Shows the tracker's status; its progress while a synchronization runs.
async function showStatus(id, view) {
  const tracker = await get(`/trackers/${id}`);
  view.facts.replaceChildren(trackerFacts(tracker));
  if (tracker.running) view.result.replaceChildren(h("p", { class: "notice sync-progress" }, progressText(tracker.running)));
  return tracker;
}

// The tracker once no synchronization of it runs (on the replica that answers).
async function settled(id, view) {
  for (let attempt = 0; attempt < 600; attempt += 1) {
    const tracker = await showStatus(id, view);
    if (!tracker.running) return tracker;
    await pause(700);
  }
  throw new Error("The synchronization is still running; reload the page later to see how it ended.");
}

// Starts a synchronization in the background (202; 409 when one runs already, which is
// followed instead) and follows it: live progress from its events, the status until it ends.
async function syncNow(id, view) {
  view.button.disabled = true;
  view.result.replaceChildren(h("p", { class: "notice sync-progress" }, "Synchronizing…"));
  let finished = null;
  syncing.set(id, (data) => {
    if (data.event === "sync.progress") view.result.replaceChildren(h("p", { class: "notice sync-progress" }, progressText(data)));
    if (data.event === "sync.finished") finished = data;
  });
  try {
    let startedHere = true;
    try {
      await post(`/trackers/${id}/sync`);
    } catch (error) {
      if (error.status !== 409) throw error;
      startedHere = false;
    }
    const tracker = await settled(id, view);
    view.result.replaceChildren(syncOutcome(finished, startedHere, tracker));
  } catch (error) {
    view.result.replaceChildren(errorBox(error));
  } finally {
    syncing.delete(id);
    view.button.disabled = false;
  }
}

function trackerCard(tracker, reload) {
  const view = { facts: h("div", {}, trackerFacts(tracker)), result: h("div", { class: "sync-result", "aria-live": "polite" }) };
  view.button = h("button", { class: "primary", "data-action": "sync", onclick: () => syncNow(tracker.id, view) }, "Sync now");
  const remove = async () => {
    if (!confirm(`Disconnect ${tracker.name}? Its issues leave the search index and its issue tools go away.`)) return;
    try {
      await del(`/trackers/${tracker.id}`);
      await reload();
    } catch (error) {
      view.result.replaceChildren(errorBox(error));
    }
  };
  return h("div", { class: "card", "data-tracker": tracker.name, "data-id": tracker.id },
    h("h2", {}, tracker.name, " ", h("span", { class: "muted" }, tracker.kind)),
    view.facts,
    webhookField(tracker),
    h("div", { class: "buttons" }, view.button, h("button", { class: "danger", "data-action": "delete", onclick: remove }, "Delete")),
    view.result);
}

// The form's tracker as `POST /trackers` and `POST /projects/test-connection` take it; empty
// fields are left out (the server's defaults apply).
function trackerEntry(form) {
  const data = new FormData(form);
  const text = (name) => String(data.get(name) ?? "").trim() || undefined;
  return {
    name: text("name") ?? "",
    kind: data.get("kind"),
    url: text("url"),
    token: text("token"),
    username: text("username"),
    projects: (text("projects") ?? "").split(",").map((p) => p.trim()).filter(Boolean),
    webhook_secret: text("webhook_secret"),
    sync_interval: text("sync_interval"),
  };
}

function connectionResult(projects) {
  return h("div", { class: "notice", id: "connection-ok" },
    h("p", {}, `Connected: the tracker shows ${projects.length === 1 ? "this project" : `these ${projects.length} projects`}.`),
    h("ul", {}, projects.map((p) => h("li", {},
      h("code", {}, p.key), ` ${p.name}`,
      safeUrl(p.url) && [" · ", h("a", { href: p.url, target: "_blank", rel: "noopener noreferrer" }, "open")]))));
}

function connectionError(error) {
  const box = errorBox(new Error(`The connection test failed: ${error.message}`));
  box.id = "connection-error";
  return box;
}

function formField(label, input, hint) {
  return h("div", {}, h("label", { for: input.id }, label), input, hint && h("div", { class: "muted hint" }, hint));
}

function trackerForm(added) {
  const answer = h("div", { "aria-live": "polite" });
  const url = h("input", { id: "tracker-url", name: "url", type: "url", placeholder: `default: ${trackerKinds.github.url}` });
  const kind = h("select", {
    id: "tracker-kind", name: "kind",
    onchange: () => { url.placeholder = trackerKinds[kind.value].url ? `default: ${trackerKinds[kind.value].url}` : "required: https://your-site.atlassian.net"; },
  }, Object.keys(trackerKinds).map((k) => h("option", { value: k }, k)));
  const form = h("form", {
    class: "card", id: "tracker-form",
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        const tracker = await post("/trackers", trackerEntry(form));
        await added(tracker);
      } catch (error) {
        answer.replaceChildren(errorBox(error));
      }
    },
  },
    h("h2", {}, "Connect a tracker"),
    h("div", { class: "row" },
      formField("Name", h("input", { id: "tracker-name", name: "name", required: true, maxlength: "100" })),
      formField("Kind", kind),
      formField("URL", url, "The API base: GitHub Enterprise's …/api/v3, a self-hosted GitLab, the Jira site.")),
    h("div", { class: "row" },
      formField("Token", h("input", { id: "tracker-token", name: "token", type: "password", autocomplete: "new-password", required: true }), "Jira Cloud: an API token. Never shown again."),
      formField("Jira username", h("input", { id: "tracker-username", name: "username", autocomplete: "off" }), "Jira Cloud only: the token's e-mail.")),
    h("div", { class: "row" },
      formField("Projects (comma-separated)", h("input", { id: "tracker-projects", name: "projects", required: true, placeholder: "owner/repo, group/project, KEY" })),
      formField("Webhook secret", h("input", { id: "tracker-webhook-secret", name: "webhook_secret", type: "password", autocomplete: "new-password" }), "Optional; without one, webhook deliveries are refused."),
      formField("Sync interval", h("input", { id: "tracker-interval", name: "sync_interval", placeholder: "5m" }), "At least 1m.")),
    answer,
    h("div", { class: "buttons" },
      h("button", {
        type: "button", id: "test-connection",
        onclick: async () => {
          answer.replaceChildren(h("p", { class: "muted" }, "Asking the tracker…"));
          const entry = trackerEntry(form);
          try {
            const { items } = await post("/projects/test-connection", { ...entry, name: entry.name || "connection test" });
            answer.replaceChildren(connectionResult(items));
          } catch (error) {
            answer.replaceChildren(connectionError(error));
          }
        },
      }, "Test connection"),
      h("button", { class: "primary", type: "submit", id: "add-tracker" }, "Add")));
  return form;
}

async function trackers() {
  const list = h("div", { id: "trackers" });
  const notice = h("div");
  const reload = async () => {
    const { items } = await get("/trackers");
    list.replaceChildren(...(items.length ? items.map((t) => trackerCard(t, reload)) :
      [h("p", { class: "muted", id: "no-trackers" }, "No trackers yet: connect one below.")]));
  };
  const added = async (tracker) => {
    show(h("h1", {}, "Issue trackers"), notice, list, trackerForm(added));
    notice.replaceChildren(h("p", { class: "notice", id: "tracker-added" }, `Connected ${tracker.name}; its first synchronization has started.`));
    await reload();
  };
  show(h("h1", {}, "Issue trackers"), notice, list, trackerForm(added));
  await reload();
  // A followed sync's events go to its card; other issue events (webhook deliveries, other
  // syncs) refresh the list, unless a "Sync now" is being followed.
  return (event) => {
    if (event.topic !== "issues") return;
    const follow = syncing.get(event.data?.tracker);
    if (follow) follow(event.data);
    else if (!syncing.size) reload().catch((error) => notice.replaceChildren(errorBox(error)));
  };
}

// ---------------------------------------------------------------------------------------------
// Issues: search the index, read one, comment on it in its tracker.

// Only web links are links: a tracker's `url` never becomes a `javascript:` href.
function safeUrl(url) {
  return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
}

const issueHref = (id) => `#/issues/${encodeURIComponent(id)}`;

// The search the Issues page showed last, so an issue's page links back to it.
let lastIssueSearch = "#/issues";

function issueSearchForm(query, project) {
  const form = h("form", {
    class: "row", id: "issue-search",
    onsubmit: (event) => {
      event.preventDefault();
      const next = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (String(v).trim()) next.set(k, String(v).trim());
      const hash = `#/issues?${next}`;
      if (location.hash === hash) route();
      else location.hash = hash;
    },
  },
    h("div", {}, h("label", { for: "issue-query" }, "Search"), h("input", { id: "issue-query", name: "query", type: "search", value: query, placeholder: "words of titles and descriptions" })),
    h("div", {}, h("label", { for: "issue-project" }, "Project (optional)"), h("input", { id: "issue-project", name: "project", value: project, placeholder: "owner/repo, group/project, KEY" })),
    h("div", {}, h("button", { class: "primary", type: "submit", id: "search-issues" }, "Search")));
  return form;
}

function issueRows(items, query) {
  if (!items.length) {
    return [h("tr", {}, h("td", { colspan: 6, class: "muted" }, query ? "No issues match." : "No issues in the index yet (trackers are connected under Trackers)."))];
  }
  return items.map((issue) => h("tr", { class: "clickable", "data-issue": issue.id, onclick: () => { location.hash = issueHref(issue.id); } },
    h("td", {}, h("a", { href: issueHref(issue.id) }, issue.key)),
    h("td", {}, issue.title),
    h("td", {}, stateBadge(issue.state), issue.status ? ` ${issue.status}` : ""),
    h("td", {}, issue.project),
    h("td", {}, issue.labels.join(", ")),
    h("td", {}, when(issue.updated_at))));
}

async function issues(params) {
  const query = params.get("query") ?? "";
  const project = params.get("project") ?? "";
  const search = new URLSearchParams({ query, limit: "50" });
  if (project) search.set("project", project);
  lastIssueSearch = location.hash || "#/issues";
  const { items } = await get(`/issues/search?${search}`);
  show(
    h("h1", {}, "Issues"),
    issueSearchForm(query, project),
    h("p", { class: "muted" }, query ? `Best matches first (${items.length}).` : "The most recently updated issues."),
    h("table", { class: "list", id: "issue-results" },
      h("thead", {}, h("tr", {}, h("th", {}, "Key"), h("th", {}, "Title"), h("th", {}, "State"), h("th", {}, "Project"), h("th", {}, "Labels"), h("th", {}, "Updated"))),
      h("tbody", {}, issueRows(items, query))));
  // A webhook delivery changed an issue: search again, unless someone is typing a search.
  return (event) => event.topic === "issues" && !document.activeElement?.matches("input") && issues(params);
}

function issueFacts(issue) {
  const row = (label, field, ...value) => h("tr", {}, h("th", {}, label), h("td", { "data-field": field }, ...value));
  const link = safeUrl(issue.url);
  return h("table", { class: "facts" },
    row("Key", "key", issue.key),
    row("State", "state", stateBadge(issue.state), issue.status ? ` — ${issue.status}` : ""),
    row("Project", "project", issue.project),
    row("Labels", "labels", issue.labels.join(", ") || "none"),
    row("Assignees", "assignees", issue.assignees.join(", ") || "nobody"),
    row("Priority", "priority", issue.priority || "none"),
    row("Author", "author", issue.author || "unknown"),
    row("Created", "created", when(issue.created_at)),
    row("Updated", "updated", when(issue.updated_at)),
    row("On the tracker", "url", link ? h("a", { id: "issue-link", href: link, target: "_blank", rel: "noopener noreferrer" }, link) : "no link"));
}

function commentForm(id) {
  const answer = h("div", { "aria-live": "polite" });
  const text = h("textarea", { id: "issue-comment", name: "body", required: true, "aria-label": "Comment" });
  const form = h("form", {
    class: "card", id: "comment-form",
    onsubmit: async (event) => {
      event.preventDefault();
      if (!text.value.trim()) return;
      try {
        const comment = await post(`/issues/${encodeURIComponent(id)}/comments`, { body: text.value });
        text.value = "";
        answer.replaceChildren(h("div", { class: "notice", id: "comment-added" },
          h("p", {}, `Comment added on the tracker${comment.author ? ` as ${comment.author}` : ""}, ${when(comment.created_at)}:`),
          h("pre", {}, comment.body)));
      } catch (error) {
        answer.replaceChildren(errorBox(error));
      }
    },
  },
    h("h2", {}, "Add a comment"),
    text,
    answer,
    h("div", { class: "buttons" }, h("button", { class: "primary", type: "submit", id: "add-comment" }, "Comment")));
  return form;
}

async function issue(id) {
  const shown = await get(`/issues/${encodeURIComponent(id)}`);
  show(
    h("p", {}, h("a", { href: lastIssueSearch }, "← Issues")),
    h("h1", { id: "issue-title" }, shown.title),
    h("div", { class: "card" }, issueFacts(shown)),
    h("h2", {}, "Description"),
    h("pre", { id: "issue-body", class: "text" }, shown.body || "(no description)"),
    commentForm(id));
  // Its tracker reported a change (a webhook): read it again, unless a comment is being typed.
  return (event) => event.topic === "issues" && event.data.issue?.key === shown.key &&
    !document.activeElement?.matches("textarea, input") && issue(id);
}

// ---------------------------------------------------------------------------------------------
// Routing: `#/page/arg?query`.

let onLiveEvent = null;
live.listeners.add((event) => onLiveEvent?.(event));

async function route() {
  const [path, query] = location.hash.slice(1).split("?");
  const parts = (path || "/approvals").split("/").filter(Boolean);
  const params = new URLSearchParams(query || "");
  onLiveEvent = null;
  if (parts[0] === "signin" || !session.access) {
    live.stop();
    return signIn();
  }
  document.getElementById("top").hidden = false;
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === parts[0]);
  }
  live.start();
  try {
    switch (parts[0]) {
      case "approvals":
        onLiveEvent = parts[1] ? await approval(parts[1]) : await approvals(params);
        break;
      case "audit": await audit(params); break;
      case "servers": await servers(); break;
      case "policies": await policies(); break;
      case "keys": await keys(); break;
      case "trackers": onLiveEvent = await trackers(); break;
      case "issues":
        onLiveEvent = parts[1] ? await issue(decodeURIComponent(parts[1])) : await issues(params);
        break;
      default: location.hash = "#/approvals";
    }
  } catch (error) {
    if (error.status !== 401) show(errorBox(error));
  }
}

document.getElementById("signout").addEventListener("click", () => {
  session.clear();
  live.stop();
  location.hash = "#/signin";
});
window.addEventListener("hashchange", route);
route();

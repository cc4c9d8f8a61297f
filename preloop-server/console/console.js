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
// Live updates over the unified WebSocket: the console subscribes to approvals and re-renders the
// page it shows when one changes.

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
      socket.send(JSON.stringify({ type: "subscribe", topics: ["approvals"] }));
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
  return () => load();
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
  return (event) => event.data.id === id && !document.activeElement?.matches("textarea, input") && approval(id);
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

// The agent console: the inbox (GET /console/api/inbox, kept live by the /ws/inbox stream) and the
// ticket view (the ticket's room over WebSocket). The sockets use the session cookie; REST calls
// use a short-lived bearer token fetched with the page's CSRF token.

import { clear, fill, formatTime, h, stickToBottom } from "./dom.js";
import { Room, socketUrl } from "./room.js";
import { consoleApi } from "./console-api.js";
import { Thread } from "./thread.js";
import { AttachmentTray, AttachmentViewer, attachmentStrings, withAttachments } from "./attachments.js";
import { ratingSummary } from "./rating.js";
import { pageVisible, seenSeq, showSeen } from "./seen.js";
import { attachSearchBox, matchLine, revealMatch } from "./search.js";
import { CustomerPanel } from "./customer-panel.js";
import { installShortcuts } from "./shortcuts.js";
import { LabelCatalogue, TicketLabels, labelChips, renderLabelFilter } from "./labels.js";
import { CannedPicker, openCannedManager } from "./canned.js";
import { loadActivity, showActivity } from "./activity.js";
import { Availability } from "./availability.js";
import { Notifier } from "./notify.js";
import { ToolCallLines } from "./tool-calls.js";

const layout = document.getElementById("layout");
const me = JSON.parse(layout.dataset.me);
const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
const ui = {
  list: document.getElementById("ticket-list"),
  empty: document.getElementById("inbox-empty"),
  more: document.getElementById("more"),
  filters: document.getElementById("filters"),
  pane: document.getElementById("ticket"),
  toast: document.getElementById("toast"),
  inboxConn: document.getElementById("inbox-conn"),
  search: document.getElementById("inbox-search"),
};

const STATUSES = ["open", "pending", "resolved", "closed"];
const PRIORITIES = ["low", "normal", "high", "urgent"];
// What people read for the API's values (the values themselves stay in option values and classes).
const STATUS_LABELS = { open: "Open", pending: "Pending", resolved: "Resolved", closed: "Closed" };
const PRIORITY_LABELS = { low: "Low", normal: "Normal", high: "High", urgent: "Urgent" };
const TYPING_TEXT = "{name} is typing…";

// ---- REST with a short-lived token (console-api.js, shared with the admin pages) -------------

const rest = consoleApi(csrfToken);
const getToken = rest.getToken;

/** api("/path") or api("/path", {method: "PUT", body}): the parsed JSON (null for a 204). */
function api(path, { method = "GET", body } = {}) {
  return rest.api(method, path, body);
}

// ---- people -----------------------------------------------------------------------------------

const attachmentViewer = new AttachmentViewer({
  authHeaders: async () => ({ Authorization: `Bearer ${await getToken()}` }),
  strings: attachmentStrings("en"),
});

const labelCatalogue = new LabelCatalogue(api);

async function loadLabels() {
  try {
    await labelCatalogue.load();
  } catch (err) {
    toast(`Could not load the labels: ${err.message}`);
  }
}

labelCatalogue.onChange(() => {
  renderLabelFilter(ui.filters.elements.label, labelCatalogue);
  renderInbox();
});

const people = new Map(); // user id -> {name, role}
let agents = [];

async function loadAgents() {
  try {
    agents = (await api("/console/api/agents")).agents;
  } catch (err) {
    toast(`Could not load the agent list: ${err.message}`);
    agents = [];
  }
  for (const agent of agents) people.set(agent.id, { name: agent.name || agent.email, role: agent.role });
  const select = ui.filters.elements.assignee;
  for (const agent of agents) {
    if (agent.id === me.id) continue;
    select.appendChild(h("option", { value: agent.id, text: agent.name || agent.email }));
  }
}

function personName(id, fallback) {
  const person = id && people.get(id);
  return (person && person.name) || fallback;
}

// ---- toast --------------------------------------------------------------------------------------

let toastTimer = null;

function toast(text) {
  ui.toast.textContent = text;
  ui.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (ui.toast.hidden = true), 6000);
}

// ---- inbox ------------------------------------------------------------------------------------

const rows = new Map(); // ticket id -> {ticket, customer, last_message, unread}
let nextCursor = null;
let inboxLoad = 0;
let searchTerms = []; // the words of the current search, as the server matched them

function filterValues() {
  const form = ui.filters.elements;
  return {
    status: form.status.value,
    priority: form.priority.value,
    assignee: form.assignee.value,
    waiting: form.waiting.checked ? "true" : "",
    q: ui.search.value.trim(),
    label: form.label.value,
  };
}

function matchesFilters(ticket) {
  const f = filterValues();
  // While searching, only rows the server found are shown: a live ticket is not known to match.
  if (f.q && !rows.has(ticket.id)) return false;
  if (f.status && ticket.status !== f.status) return false;
  if (f.priority && ticket.priority !== f.priority) return false;
  if (f.assignee === "me" && ticket.assignee_id !== me.id) return false;
  if (f.assignee === "none" && ticket.assignee_id !== null) return false;
  if (f.assignee && f.assignee !== "me" && f.assignee !== "none" && ticket.assignee_id !== f.assignee) return false;
  if (f.waiting && !ticket.waiting_for_agent) return false;
  if (f.label && !(ticket.labels || []).some((label) => label.id === f.label)) return false;
  return true;
}

async function loadInbox({ append = false } = {}) {
  const load = ++inboxLoad;
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(filterValues())) if (value) query.set(key, value);
  if (append && nextCursor) query.set("cursor", nextCursor);
  let page;
  try {
    page = await api(`/console/api/inbox?${query}`);
  } catch (err) {
    toast(`Could not load the inbox: ${err.message}`);
    return;
  }
  if (load !== inboxLoad) return; // a newer load (filters changed) has started
  searchTerms = page.terms || [];
  if (!append) {
    const unread = new Set(Array.from(rows.values()).filter((r) => r.unread).map((r) => r.ticket.id));
    rows.clear();
    for (const row of page.tickets) rows.set(row.ticket.id, { ...row, unread: unread.has(row.ticket.id) });
  } else {
    for (const row of page.tickets) if (!rows.has(row.ticket.id)) rows.set(row.ticket.id, { ...row, unread: false });
  }
  nextCursor = page.next_cursor;
  renderInbox();
}

// Per ticket, the newest change to its row that was asked for or applied. Fetches can resolve out
// of order (a ticket's creation and its automatic assignment arrive together, each fetching the
// row): only the newest may write it, or the older snapshot puts back the state before the change.
const rowVersions = new Map();

function bumpRow(ticketId) {
  const version = (rowVersions.get(ticketId) || 0) + 1;
  rowVersions.set(ticketId, version);
  return version;
}

async function fetchRow(ticketId) {
  const version = bumpRow(ticketId);
  try {
    const row = await api(`/console/api/inbox/${encodeURIComponent(ticketId)}`);
    if (rowVersions.get(ticketId) !== version) return; // a newer fetch or frame has it
    if (!matchesFilters(row.ticket)) return;
    const known = rows.get(ticketId);
    rows.set(ticketId, { ...row, unread: known ? known.unread : row.last_message?.author_kind === "customer" });
    renderInbox();
  } catch (err) {
    // gone, or not visible: nothing to show
  }
}

function sortedRows() {
  return Array.from(rows.values()).sort((a, b) => (a.ticket.last_activity_at < b.ticket.last_activity_at ? 1 : -1));
}

function renderInbox() {
  const focusedId = document.activeElement && document.activeElement.closest?.(".ticket-row")?.dataset.ticketId;
  clear(ui.list);
  for (const row of sortedRows()) ui.list.appendChild(inboxItem(row));
  ui.empty.hidden = rows.size > 0;
  ui.more.hidden = !nextCursor;
  if (focusedId) ui.list.querySelector(`.ticket-row[data-ticket-id="${CSS.escape(focusedId)}"]`)?.focus();
}

function aiLabel(ticket) {
  if (ticket.waiting_for_agent) return "Waiting for human";
  return ticket.ai_enabled ? "AI replying" : "Human";
}

function preview(message) {
  if (!message) return "No messages yet";
  const who =
    message.author_kind === "customer" ? "" : message.author_kind === "ai" ? "AI: " : message.author_kind === "agent" ? "Agent: " : "";
  const note = message.visibility === "internal" ? "Note: " : "";
  return `${note}${who}${message.body}`.slice(0, 140);
}

function inboxItem(row) {
  const { ticket, customer, last_message: last } = row;
  const isCurrent = current && current.id === ticket.id;
  const classes = ["ticket-row"];
  if (ticket.waiting_for_agent) classes.push("waiting");
  if (row.unread && !isCurrent) classes.push("unread");
  const customerName = customer ? customer.name || customer.email || "Visitor" : "Customer";
  const badges = [
    h("span", { class: `badge status-${ticket.status}`, text: STATUS_LABELS[ticket.status] || ticket.status }),
    ticket.priority !== "normal" ? h("span", { class: `badge priority-${ticket.priority}`, text: PRIORITY_LABELS[ticket.priority] || ticket.priority }) : null,
    h("span", { class: `badge ai ${ticket.waiting_for_agent ? "ai-waiting" : ticket.ai_enabled ? "ai-on" : "ai-off"}`, text: aiLabel(ticket) }),
    ticket.assignee_id ? h("span", { class: "badge assignee", text: `→ ${personName(ticket.assignee_id, "someone")}` }) : null,
  ];
  const link = h(
    "a",
    {
      class: classes.join(" "),
      href: `/console/tickets/${ticket.id}`,
      dataset: { ticketId: ticket.id },
      "aria-current": isCurrent ? "page" : null,
      onclick: (event) => {
        if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
        event.preventDefault();
        openTicket(ticket.id, { push: true, match: row.match });
      },
    },
    h(
      "div",
      { class: "row-top" },
      h("span", { class: "customer", text: customerName }),
      h("time", { datetime: ticket.last_activity_at, text: formatTime(ticket.last_activity_at) }),
    ),
    h("div", { class: "subject", text: ticket.subject }),
    row.match ? matchLine(row.match) : h("div", { class: "preview", text: preview(last) }),
    h("div", { class: "badges" }, badges),
    labelChips(ticket, labelCatalogue),
  );
  return h("li", {}, link);
}

function onInboxFrame(frame) {
  if (frame.type === "inbox.ready") {
    loadInbox();
  } else if (frame.type === "inbox.ticket_created") {
    if (matchesFilters(frame.ticket)) fetchRow(frame.ticket.id);
  } else if (frame.type === "inbox.ticket_updated") {
    const row = rows.get(frame.ticket.id);
    if (row) {
      bumpRow(frame.ticket.id);
      row.ticket = frame.ticket;
      if (!matchesFilters(frame.ticket) && !(current && current.id === frame.ticket.id)) rows.delete(frame.ticket.id);
      renderInbox();
    } else if (matchesFilters(frame.ticket)) {
      fetchRow(frame.ticket.id);
    }
  } else if (frame.type === "inbox.labels_changed") {
    labelCatalogue.set(frame.labels);
  } else if (frame.type === "inbox.message_created") {
    const message = frame.message;
    const row = rows.get(message.ticket_id);
    if (row) {
      bumpRow(message.ticket_id);
      if (!row.last_message || message.seq >= row.last_message.seq) row.last_message = message;
      if (message.created_at > row.ticket.last_activity_at) row.ticket = { ...row.ticket, last_activity_at: message.created_at };
      if (message.author_kind === "customer" && !(current && current.id === message.ticket_id)) row.unread = true;
      renderInbox();
    } else {
      fetchRow(message.ticket_id);
    }
  }
}

// The inbox socket: no snapshot, so every (re)connect reloads the list (on inbox.ready).
let inboxAttempt = 0;

let inboxSocket = null;

function sendInbox(frame) {
  if (!inboxSocket || inboxSocket.readyState !== WebSocket.OPEN) return false;
  inboxSocket.send(JSON.stringify(frame));
  return true;
}

function connectInbox() {
  ui.inboxConn.textContent = inboxAttempt ? "Reconnecting…" : "";
  const ws = new WebSocket(socketUrl("/ws/inbox"));
  inboxSocket = ws;
  let alive = false;
  ws.onmessage = (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch (err) {
      return;
    }
    if (frame.type === "inbox.ready") {
      alive = true;
      inboxAttempt = 0;
      ui.inboxConn.textContent = "";
      ui.inboxConn.classList.remove("offline");
    }
    onInboxFrame(frame);
    availability.onFrame(frame);
    notifier.onFrame(frame);
  };
  ws.onclose = (event) => {
    if (event.code === 4003) {
      // Access was revoked (disabled, demoted, logged out elsewhere): docs/protocol.md.
      window.location.assign("/console/login");
      return;
    }
    ui.inboxConn.textContent = "Offline — reconnecting…";
    ui.inboxConn.classList.add("offline");
    if (!alive) inboxAttempt += 1;
    const base = Math.min(15000, 500 * 2 ** inboxAttempt);
    inboxAttempt += 1;
    setTimeout(connectInbox, base / 2 + Math.random() * (base / 2));
  };
}

// ---- the ticket view --------------------------------------------------------------------------

let current = null; // {id, room, thread, els, row, typing: Map, hasMore}

function describe(message) {
  const note = message.visibility === "internal" ? "Internal note" : null;
  if (message.author_kind === "customer") {
    const customer = current && current.row && current.row.customer;
    return { kind: "customer", author: (customer && (customer.name || customer.email)) || "Customer", note };
  }
  if (message.author_kind === "ai") return { kind: "ai", author: "AI assistant", note };
  if (message.author_kind === "system") return { kind: "system", author: null, note };
  const mine = message.author_id === me.id;
  const user = current && current.room.present.get(message.author_id);
  return { kind: mine ? "mine" : "agent", author: mine ? "You" : personName(message.author_id, (user && user.name) || "Agent"), note };
}

function select(label, name, values, onChange) {
  const id = `ctl-${name}`;
  const control = h(
    "select",
    { id, name, onchange: (event) => onChange(event.target.value) },
    values.map(([value, text]) => h("option", { value, text })),
  );
  return h("div", { class: "control" }, h("label", { for: id, text: label }), control);
}

function buildTicketPane(ticketId) {
  clear(ui.pane);
  const els = {};
  els.back = h("button", { type: "button", class: "ghost back", "aria-label": "Back to inbox", text: "← Inbox", onclick: () => closeTicket({ push: true }) });
  els.subject = h("h2", { class: "subject", id: "ticket-subject", text: "Loading…" });
  els.customer = h("p", { class: "customer-line" });
  els.rating = h("div", { class: "rating-row", "aria-live": "polite" });
  els.status = select("Status", "status", STATUSES.map((s) => [s, STATUS_LABELS[s]]), (value) => update({ status: value }));
  els.priority = select("Priority", "priority", PRIORITIES.map((p) => [p, PRIORITY_LABELS[p]]), (value) => update({ priority: value }));
  els.assignee = select(
    "Assignee",
    "assignee",
    [["", "Unassigned"], ...agents.map((a) => [a.id, a.id === me.id ? `${a.name || a.email} (me)` : a.name || a.email])],
    (value) => update({ assignee_id: value || null }),
  );
  els.labels = new TicketLabels({
    catalogue: labelCatalogue,
    toast,
    setLabels: async (ids) =>
      (await api(`/tickets/${encodeURIComponent(ticketId)}/labels`, { method: "PUT", body: { label_ids: ids } })).ticket,
  });
  els.aiState = h("span", { class: "badge ai", role: "status" });
  els.aiButton = h("button", { type: "button", class: "secondary", onclick: toggleAi });
  els.presence = h("ul", { class: "presence", "aria-label": "In this conversation" });
  els.panel = new CustomerPanel({ api, openTicket: (id) => openTicket(id, { push: true }) });
  els.conn = h("div", { class: "conn", role: "status" });
  els.older = h("button", { type: "button", class: "ghost older", hidden: true, text: "Load older messages", onclick: loadOlder });
  els.list = h("ol", { class: "messages", "aria-label": "Messages", "aria-live": "polite", "aria-relevant": "additions", tabindex: "0" });
  els.typing = h("div", { class: "typing", "aria-live": "polite" });
  // Scrolls by itself when a suggestion is long, so the conversation above keeps its room.
  els.copilotText = h("p", { class: "copilot-text", tabindex: "0" });
  els.copilotUse = h("button", { type: "button", class: "secondary", text: "Use suggestion", disabled: true, onclick: useSuggestion });
  els.copilot = h(
    "section",
    { class: "copilot", hidden: true, "aria-label": "Suggested reply", "aria-live": "polite" },
    h("h3", { text: "Suggested reply" }),
    els.copilotText,
    h("div", { class: "copilot-actions" }, els.copilotUse, h("button", { type: "button", class: "ghost", text: "Dismiss", onclick: () => stickToBottom(els.list, () => (els.copilot.hidden = true)) })),
  );
  els.input = h("textarea", { id: "reply-input", rows: "3", maxlength: "10000", placeholder: "Reply to the customer… (Ctrl+Enter to send)" });
  els.modeReply = h("input", { type: "radio", name: "mode", value: "reply", checked: true, id: "mode-reply" });
  els.modeNote = h("input", { type: "radio", name: "mode", value: "note", id: "mode-note" });
  els.send = h("button", { type: "submit", class: "primary", text: "Send" });
  els.suggest = h("button", { type: "button", class: "secondary", text: "Suggest reply", onclick: askCopilot });
  els.saveCanned = h("button", {
    type: "button",
    class: "ghost",
    text: "Canned…",
    "aria-label": "Your canned responses",
    title: "Save the text as a canned response, or delete one (type / to use them)",
    onclick: () => openCannedManager({ api, toast, text: () => els.input.value, onChange: () => els.canned.refresh() }),
  });
  els.form = h(
    "form",
    { class: "composer", onsubmit: (event) => (event.preventDefault(), sendReply()) },
    h(
      "fieldset",
      { class: "mode" },
      h("legend", { class: "sr-only", text: "Message type" }),
      h("label", { for: "mode-reply" }, els.modeReply, " Reply"),
      h("label", { for: "mode-note" }, els.modeNote, " Internal note"),
    ),
    h("label", { for: "reply-input", class: "sr-only", id: "reply-label", text: "Message" }),
    els.input,
    h("div", { class: "composer-actions" }, els.saveCanned, els.suggest, els.send),
  );
  for (const radio of [els.modeReply, els.modeNote]) radio.addEventListener("change", renderMode);
  els.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      sendReply();
    }
  });
  els.input.addEventListener("input", () => current && current.room.setTyping(els.input.value.trim().length > 0));
  // "/" in the composer: canned responses (canned.js), with the conversation's variables.
  els.canned = new CannedPicker({ input: els.input, api, variables: () => cannedVariables(ticketId) });
  els.form.insertBefore(els.canned.el, els.input);

  ui.pane.append(
    h(
      "header",
      { class: "ticket-head" },
      h("div", { class: "title-row" }, els.back, h("div", { class: "titles" }, els.subject, els.customer, els.rating)),
      h("div", { class: "controls" }, els.status, els.priority, els.assignee, h("div", { class: "control ai-control" }, els.aiState, els.aiButton), els.labels.el),
      h("div", { class: "presence-row" }, h("span", { class: "presence-label", text: "Here now:" }), els.presence),
    ),
    els.panel.element,
    els.conn,
    h("div", { class: "thread" }, els.older, els.list),
    els.typing,
    els.copilot,
    els.form,
  );
  ui.pane.setAttribute("aria-labelledby", "ticket-subject");
  return els;
}

// The conversation stays pinned to its newest message while the reader is at the bottom, also when
// the list itself gets shorter (the copilot panel opens, the header wraps, a phone's keyboard).
function pinToBottom(list) {
  let pinned = true;
  list.addEventListener("scroll", () => {
    pinned = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  });
  const observer = new ResizeObserver(() => {
    if (pinned) list.scrollTop = list.scrollHeight;
  });
  observer.observe(list);
  return observer;
}

function cannedVariables(ticketId) {
  const customer = (current && current.id === ticketId && current.row && current.row.customer) || {};
  return {
    "customer.name": customer.name || "",
    "customer.email": customer.email || "",
    "agent.name": me.name || "",
    "ticket.id": ticketId,
  };
}

/** The ticket's activity lines (agents only): all of them on open, what was missed on a reconnect. */
async function syncActivity(ctx) {
  try {
    const entries = await loadActivity(api, ctx.id, ctx.lastActivityId || 0);
    if (current !== ctx) return;
    for (const entry of entries) addActivity(ctx, entry);
  } catch (err) {
    if (current === ctx) toast(`Could not load the activity log: ${err.message}`);
  }
}

function addActivity(ctx, entry) {
  ctx.lastActivityId = Math.max(ctx.lastActivityId || 0, entry.id);
  showActivity(ctx.thread, entry, formatTime);
}

function renderMode() {
  if (!current) return;
  const note = current.els.modeNote.checked;
  current.els.form.classList.toggle("note-mode", note);
  current.els.input.placeholder = note ? "Internal note — only agents see it (Ctrl+Enter to send)" : "Reply to the customer… (Ctrl+Enter to send)";
  current.els.send.textContent = note ? "Add note" : "Send";
}

async function openTicket(ticketId, { push = false, match = null } = {}) {
  if (current && current.id === ticketId) {
    showView("ticket");
    if (match) revealMatch(current.els.list, match, searchTerms, loadOlder);
    return;
  }
  closeTicket({ push: false });
  if (push) history.pushState({ ticket: ticketId }, "", `/console/tickets/${ticketId}`);
  const els = buildTicketPane(ticketId);
  const ctx = { id: ticketId, els, row: rows.get(ticketId) || null, typing: new Map(), hasMore: false, reveal: match };
  ctx.pin = pinToBottom(els.list);
  const thread = new Thread(els.list, { describe, pendingLabel: "Sending…", streamAuthor: "AI assistant", labels: { replying: "The AI is replying…" } });
  ctx.thread = thread;
  // Attachments (attachments.js): files under messages; the composer's paper-clip, drop, paste.
  withAttachments(thread, attachmentViewer);
  ctx.tray = new AttachmentTray({
    form: els.form,
    input: els.input,
    buttonBefore: els.suggest,
    dropTargets: [els.list, els.form],
    strings: attachmentStrings("en"),
    ticketId: async () => ticketId,
    authHeaders: async (retry) => ({ Authorization: `Bearer ${await getToken(retry)}` }),
  });
  // AI actions (tool-calls.js): a line per call, with Approve / Refuse while one waits.
  ctx.tools = new ToolCallLines(thread, {
    decide: (callId, approve) => ctx.room.sendFrame({ type: approve ? "ai.tool_call.approve" : "ai.tool_call.refuse", call_id: callId }),
    toast,
  });
  ctx.room = new Room({
    url: (afterSeq) => socketUrl(`/tickets/${encodeURIComponent(ticketId)}/ws${afterSeq !== null ? `?after_seq=${afterSeq}` : ""}`),
    on: {
      status: (state) => renderConn(ctx, state),
      joined: (frame, { first, fresh }) => {
        if (first) {
          ctx.hasMore = frame.has_more;
          thread.reset(ctx.room);
          if (ctx.reveal) {
            revealMatch(els.list, ctx.reveal, searchTerms, loadOlder);
            ctx.reveal = null;
          }
          api(`/tickets/${encodeURIComponent(ticketId)}/tool-calls`).then(
            (body) => current === ctx && ctx.tools.load(body.tool_calls),
            () => {}, // the log is extra: the live frames still show new calls
          );
        } else {
          for (const message of fresh) thread.addMessage(message);
        }
        renderTicket(ctx);
        renderPresence(ctx);
        renderSeen(ctx);
        syncActivity(ctx);
      },
      activity: (entry) => addActivity(ctx, entry),
      message: (message) => {
        thread.addMessage(message);
        renderSeen(ctx);
      },
      read: () => renderSeen(ctx),
      pending: (entries) => thread.setPending(entries),
      toolCall: (frame) => ctx.tools.update(frame),
      toolCallDetail: (call) => ctx.tools.detail(call),
      stream: (state) => {
        if (state.kind === "copilot") renderCopilot(ctx, state.text, false);
        else thread.stream(state);
      },
      streamEnd: (replyId, how, frame, state) => {
        if ((state && state.kind === "copilot") || (frame && frame.kind === "copilot")) {
          if (how === "completed") renderCopilot(ctx, frame.text, true);
          else if (how !== "gone") renderCopilot(ctx, (state && state.text) || "", true, how === "failed" ? frame.message : "Cancelled");
          return;
        }
        if (how === "cancelled") {
          // Keep what the customer already read, marked as stopped.
          thread.keepStream(replyId, state ? state.text : "", "AI reply stopped: an agent took over.");
          return;
        }
        thread.endStream(replyId);
        if (how === "failed") thread.addEvent(`AI reply failed: ${frame.message}`);
      },
      failureDetail: (frame) => thread.addEvent(`Details (agents only): ${frame.detail}`),
      ticket: (ticket, changes) => {
        renderTicket(ctx);
        const row = rows.get(ticket.id);
        if (row) {
          row.ticket = ticket;
          renderInbox();
        }
        if (changes.includes("ai_enabled")) thread.addEvent(ticket.ai_enabled ? "The AI is replying again." : "A human took over from the AI.");
        if (changes.includes("rating") && ticket.rating) thread.addEvent(`The customer rated this conversation ${ticket.rating}/5.`);
      },
      presence: (kind, user, known) => {
        renderPresence(ctx);
        // known: an agent already here who now writes to the customer (docs/protocol.md).
        if (user.id !== me.id && !(kind === "joined" && known)) thread.addEvent(`${user.name || user.role} ${kind === "joined" ? "joined" : "left"}.`);
      },
      typing: (user, active) => {
        if (active) ctx.typing.set(user.id, user.name || user.role);
        else ctx.typing.delete(user.id);
        els.typing.textContent = ctx.typing.size ? fill(TYPING_TEXT, { name: Array.from(ctx.typing.values()).join(", ") }) : "";
      },
      error: (frame) => {
        toast(frame.message || "Something went wrong");
        renderTicket(ctx); // undo a control change the server refused
      },
    },
  });
  current = ctx;
  showView("ticket");
  const row = rows.get(ticketId);
  if (row) row.unread = false;
  renderInbox();
  ctx.room.start();
  els.panel.load(ticketId);
  if (!ctx.row) {
    try {
      ctx.row = await api(`/console/api/inbox/${encodeURIComponent(ticketId)}`);
      if (current === ctx) {
        renderTicket(ctx);
        thread.reset(ctx.room);
      }
    } catch (err) {
      if (current === ctx) toast(`Could not load this ticket: ${err.message}`);
    }
  }
  if (!match) els.input.focus();
}

function closeTicket({ push = false } = {}) {
  if (current) {
    current.room.stop();
    current.pin.disconnect();
    current = null;
  }
  clear(ui.pane);
  ui.pane.appendChild(h("p", { class: "ticket-placeholder", text: "Select a conversation." }));
  showView("inbox");
  if (push) history.pushState({}, "", "/console");
  renderInbox();
}

function showView(view) {
  layout.dataset.view = view;
}

function renderConn(ctx, state) {
  const text = state === "online" ? "" : state === "connecting" ? "Connecting…" : state === "offline" ? "Offline — reconnecting…" : "";
  ctx.els.conn.textContent = text;
  ctx.els.conn.dataset.state = state; // what tests (and styles) key on; the text is empty when online
  ctx.els.conn.classList.toggle("offline", state === "offline");
  ctx.els.send.disabled = false;
}

function renderTicket(ctx) {
  const ticket = ctx.room.ticket;
  const { els } = ctx;
  if (!ticket) return;
  els.subject.textContent = ticket.subject;
  const customer = ctx.row && ctx.row.customer;
  const bits = [];
  if (customer) {
    bits.push(customer.name || "Visitor");
    if (customer.email) bits.push(customer.email);
    if (customer.anonymous) bits.push("anonymous visitor");
    if (customer.external_id) bits.push(`site user ${customer.external_id}`);
  }
  // The address the visitor gave in the widget for reply emails (docs/web.md, "Away mode and email").
  if (ticket.contact_email) bits.push(`replies by email to ${ticket.contact_email}`);
  els.customer.textContent = bits.join(" · ");
  els.status.querySelector("select").value = ticket.status;
  els.priority.querySelector("select").value = ticket.priority;
  els.assignee.querySelector("select").value = ticket.assignee_id || "";
  els.labels.render(ticket);
  els.aiState.textContent = aiLabel(ticket);
  els.aiState.className = `badge ai ${ticket.waiting_for_agent ? "ai-waiting" : ticket.ai_enabled ? "ai-on" : "ai-off"}`;
  // The visible text is the whole accessible name (no aria-label that says something else).
  els.aiButton.textContent = ticket.ai_enabled ? "Take over from the AI" : "Hand back to the AI";
  els.older.hidden = !ctx.hasMore;
  clear(els.rating);
  const rating = ratingSummary(ticket);
  if (rating) els.rating.appendChild(rating);
}

/** "Seen by customer" under the agents' last public message once the customer's cursor covers it,
 * and our own cursor moved to what this open, visible ticket shows. */
function renderSeen(ctx) {
  if (current !== ctx) return;
  const room = ctx.room;
  const mine = (m) => m.author_kind !== "customer" && m.visibility === "public";
  showSeen(ctx.els.list, seenSeq(room, mine, room.readBy((user) => user.role === "customer")), "Seen by customer");
  if (pageVisible()) room.markRead(room.lastSeq);
}

function renderPresence(ctx) {
  clear(ctx.els.presence);
  for (const user of ctx.room.present.values()) {
    ctx.els.presence.appendChild(h("li", { class: `chip role-${user.role}` }, user.id === me.id ? "You" : user.name || user.role, h("span", { class: "chip-role", text: user.role })));
  }
}

function update(changes) {
  if (!current) return;
  if (!current.room.sendFrame({ type: "ticket.update", ...changes })) {
    toast("Offline: the change was not sent.");
    renderTicket(current);
  }
}

function toggleAi() {
  if (!current || !current.room.ticket) return;
  const frame = { type: current.room.ticket.ai_enabled ? "ai.takeover" : "ai.handback" };
  if (!current.room.sendFrame(frame)) toast("Offline: try again when reconnected.");
}

function askCopilot() {
  if (!current) return;
  if (!current.room.sendFrame({ type: "copilot.request" })) {
    toast("Offline: try again when reconnected.");
    return;
  }
  renderCopilot(current, "", false);
}

function renderCopilot(ctx, text, done, problem) {
  const { els } = ctx;
  // The panel takes room from the conversation: keep its newest messages in view.
  stickToBottom(els.list, () => {
    els.copilot.hidden = false;
    els.copilotText.textContent = text || (done ? "" : "Thinking…");
    els.copilot.classList.toggle("streaming", !done);
    els.copilotUse.disabled = !done || !text;
    if (problem) els.copilotText.textContent = `${text ? `${text}\n\n` : ""}(${problem})`;
  });
  els.copilotText.scrollTop = els.copilotText.scrollHeight;
  ctx.suggestion = text;
}

function useSuggestion() {
  if (!current || !current.suggestion) return;
  const { els } = current;
  els.modeReply.checked = true;
  renderMode();
  els.input.value = current.suggestion;
  stickToBottom(els.list, () => (els.copilot.hidden = true));
  els.input.focus();
}

async function sendReply() {
  if (!current) return;
  const ctx = current;
  const body = ctx.els.input.value.trim();
  if (body) ctx.els.input.value = "";
  const files = await ctx.tray.takeReady();
  if (!body && !files.length) return;
  ctx.room.send(body, { internal: ctx.els.modeNote.checked, attachments: files });
}

/** Resolves true when older messages were added. */
async function loadOlder() {
  if (!current || !current.hasMore) return false;
  const ctx = current;
  const oldest = ctx.room.oldestSeq();
  if (oldest === null) return false;
  try {
    const page = await api(`/tickets/${encodeURIComponent(ctx.id)}/messages?before_seq=${oldest}&limit=50`);
    if (current !== ctx) return;
    ctx.thread.addOlder(ctx.room.addOlder(page.messages));
    ctx.hasMore = page.has_more;
    renderTicket(ctx);
    return page.messages.length > 0;
  } catch (err) {
    toast(`Could not load older messages: ${err.message}`);
    return false;
  }
}

// ---- start ------------------------------------------------------------------------------------

ui.filters.addEventListener("change", () => loadInbox());
document.addEventListener("visibilitychange", () => current && renderSeen(current));
attachSearchBox(ui.search, () => loadInbox());
// Keyboard shortcuts (shortcuts.js): j/k and arrows move through the inbox, r and n for the composer.
installShortcuts({
  move(delta) {
    const links = Array.from(ui.list.querySelectorAll(".ticket-row"));
    if (!links.length) return;
    showView("inbox");
    const at = links.indexOf(document.activeElement);
    const from = at === -1 ? links.findIndex((a) => a.getAttribute("aria-current") === "page") : at;
    const next = from === -1 ? (delta > 0 ? 0 : links.length - 1) : Math.max(0, Math.min(links.length - 1, from + delta));
    links[next].focus();
  },
  focusComposer() {
    if (current) current.els.input.focus();
  },
  toggleNote() {
    if (!current) return;
    (current.els.modeNote.checked ? current.els.modeReply : current.els.modeNote).checked = true;
    renderMode();
    current.els.input.focus();
  },
  focusSearch() {
    showView("inbox");
    ui.search.focus();
    ui.search.select();
  },
});
ui.more.addEventListener("click", () => loadInbox({ append: true }));
window.addEventListener("popstate", () => {
  const match = window.location.pathname.match(/^\/console\/tickets\/([0-9a-fA-F-]{36})$/);
  if (match) openTicket(match[1]);
  else closeTicket();
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && current && layout.dataset.view === "ticket" && window.matchMedia("(max-width: 800px)").matches) {
    closeTicket({ push: true });
  }
});

// Availability and notifications (availability.js, notify.js) live in the top bar.
const request = (method, path, body) => api(path, { method, body });
const tools = document.getElementById("topbar-tools");
const availability = new Availability({ root: tools, me, request, send: sendInbox, toast });
const notifier = new Notifier({
  root: tools,
  me,
  request,
  viewing: (ticketId) => Boolean(current && current.id === ticketId && document.hasFocus() && document.visibilityState === "visible"),
  open: (ticketId) => openTicket(ticketId, { push: true }),
});

(async () => {
  await Promise.all([loadAgents(), loadLabels()]);
  connectInbox();
  const initial = layout.dataset.initialTicket;
  if (initial) openTicket(initial);
})();

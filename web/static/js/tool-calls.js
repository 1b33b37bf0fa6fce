// AI actions in a conversation (docs/ai.md, "Acting"). The room sends `ai.tool_call` (everyone:
// a human label and a status) and, to agents, `ai.tool_call_detail` (arguments, outcome, an
// excerpt of the answer). The console draws one line per call, updated in place, with Approve /
// Refuse while a mutating call waits; the widget shows the label while a call runs.

import { h } from "./dom.js";

const STATUS_TEXT = {
  started: "running",
  running: "running",
  awaiting_approval: "waiting for approval",
  approved: "approved",
  refused: "refused",
  finished: "done",
  succeeded: "done",
  failed: "failed",
  cancelled: "cancelled",
};
const ACTIVE = new Set(["started", "running", "awaiting_approval", "approved"]);

/** The widget's status text for an ai.tool_call frame: the label while the call is under way,
 * null once it is over. */
export function runningLabel(frame) {
  return ACTIVE.has(frame.status) ? frame.label || null : null;
}

/** The widget's question for an action its customer may confirm: the text and two buttons.
 * `decide(approve)` sends the frame; the row goes once the call is decided (any ai.tool_call
 * with another status). */
export function confirmRow(frame, { ask, yes, no }, decide) {
  const buttons = [
    h("button", { type: "button", class: "retry-button confirm-yes", text: yes, onclick: () => decide(true) }),
    h("button", { type: "button", class: "retry-button confirm-no", text: no, onclick: () => decide(false) }),
  ];
  return h(
    "li",
    { class: "msg msg-event msg-confirm", "data-tool-call": frame.call_id },
    h("div", { class: "bubble" }, h("p", { text: ask }), h("div", { class: "confirm-actions" }, buttons)),
  );
}

/** The console's tool-call lines in a Thread's list. `decide(callId, approve)` sends the frame
 * (ai.tool_call.approve / ai.tool_call.refuse); it returns false when offline. */
export class ToolCallLines {
  constructor(thread, { decide, toast }) {
    this.thread = thread;
    this.decide = decide;
    this.toast = toast;
    this.calls = new Map(); // call id -> {id, label, name, status, confirm_by, detail}
  }

  /** ai.tool_call (the room's view). */
  update(frame) {
    const call = this.calls.get(frame.call_id) || { id: frame.call_id };
    Object.assign(call, { label: frame.label, name: frame.name, status: frame.status, confirm_by: frame.confirm_by });
    this.calls.set(call.id, call);
    this.draw(call);
  }

  /** ai.tool_call_detail (agents). */
  detail(view) {
    const call = this.calls.get(view.id) || { id: view.id, label: view.label, name: view.name, status: view.status };
    call.detail = view;
    if (!call.label) call.label = view.label;
    // A call the room never heard of (unknown tool, bad arguments) still gets its line.
    if (!call.status || view.status === "failed") call.status = view.status;
    this.calls.set(call.id, call);
    this.draw(call);
  }

  /** Earlier calls from GET /tickets/{id}/tool-calls (after opening the ticket). */
  load(views) {
    for (const view of views) this.detail(view);
  }

  draw(call) {
    const row = this.row(call);
    const existing = this.thread.list.querySelector(`li[data-tool-call="${CSS.escape(call.id)}"]`);
    if (existing) existing.replaceWith(row);
    else this.thread.addNode(row);
  }

  row(call) {
    const status = STATUS_TEXT[call.status] || call.status;
    const parts = [h("span", { class: "tool-label", text: call.label || call.name || "Action" }), h("span", { class: `badge tool-${call.status}`, text: status })];
    const d = call.detail;
    if (d) {
      const facts = [`${d.name}(${JSON.stringify(d.arguments ?? {})})`];
      if (d.http_status) facts.push(`HTTP ${d.http_status}`);
      if (d.error) facts.push(d.error);
      parts.push(h("code", { class: "tool-facts", text: facts.join(" · ") }));
    }
    if (call.status === "awaiting_approval") {
      const send = (approve) => {
        if (!this.decide(call.id, approve)) this.toast("Offline: try again when reconnected.");
      };
      parts.push(
        h(
          "span",
          { class: "row-actions" },
          h("button", { type: "button", class: "primary", text: "Approve", "aria-label": `Approve: ${call.label}`, onclick: () => send(true) }),
          h("button", { type: "button", class: "secondary", text: "Refuse", "aria-label": `Refuse: ${call.label}`, onclick: () => send(false) }),
        ),
      );
    }
    return h("li", { class: "msg msg-event msg-tool", "data-tool-call": call.id }, h("div", { class: "bubble" }, parts));
  }
}

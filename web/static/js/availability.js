// Agent availability in the console (docs/web.md, "Never miss a customer"): the agent's own
// status (online or away, a choice sent with PUT /console/api/availability), the team's statuses
// (GET /console/api/availability, then kept live by the inbox stream's agent.availability
// frames), and activity reports over the inbox socket so that an idle agent goes away after
// AGENT_AWAY_AFTER_SECONDS and comes back when they use the console again.

import { clear, h } from "./dom.js";

const LABELS = { online: "Online", away: "Away", offline: "Offline" };
// Activity is reported at most this often while the agent is online; at once when they are away
// for inactivity (the server brings them back online).
const REPORT_EVERY_MS = 30000;
const ACTIVITY_EVENTS = ["pointerdown", "keydown", "wheel", "touchstart", "focus"];

export class Availability {
  /**
   * root: element to render into (the top bar's tools); me: {id, name, role};
   * request(method, path, body?) -> parsed JSON; send(frame) -> bool (the inbox socket);
   * toast(text).
   */
  constructor({ root, me, request, send, toast }) {
    this.me = me;
    this.request = request;
    this.send = send;
    this.toast = toast;
    this.agents = new Map(); // id -> {id, name, role, status, away, since}
    this.lastReport = 0;
    this.els = {};
    this.build(root);
    for (const type of ACTIVITY_EVENTS) window.addEventListener(type, () => this.reportActivity(), { passive: true, capture: true });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.reportActivity();
    });
  }

  build(root) {
    const els = this.els;
    els.select = h(
      "select",
      { id: "my-status", class: "status-select", "aria-label": "Your status", onchange: (event) => this.choose(event.target.value) },
      h("option", { value: "online", text: LABELS.online }),
      h("option", { value: "away", text: LABELS.away }),
    );
    els.dot = h("span", { class: "status-dot status-online", "aria-hidden": "true" });
    els.summary = h("summary", { class: "team-summary", text: "Team" });
    els.list = h("ul", { class: "team-list", "aria-label": "Agents and their status" });
    els.team = h("details", { class: "team", id: "team" }, els.summary, els.list);
    root.append(h("span", { class: "my-status" }, els.dot, h("label", { for: "my-status", class: "sr-only", text: "Your status" }), els.select), els.team);
  }

  async load() {
    let body;
    try {
      body = await this.request("GET", "/console/api/availability");
    } catch (err) {
      this.toast(`Could not load who is online: ${err.message}`);
      return;
    }
    this.agents.clear();
    for (const agent of body.agents) this.agents.set(agent.id, agent);
    if (body.me) this.agents.set(body.me.id, body.me);
    this.render();
  }

  async choose(status) {
    try {
      const body = await this.request("PUT", "/console/api/availability", { status });
      this.agents.set(body.me.id, body.me);
    } catch (err) {
      this.toast(`Could not change your status: ${err.message}`);
    }
    this.render();
  }

  /** Frames of the inbox stream (console.js passes every one). */
  onFrame(frame) {
    if (frame.type === "inbox.ready") {
      // (Re)connected: this socket is what makes us online; read everyone's status again.
      this.lastReport = 0;
      this.load();
    } else if (frame.type === "agent.availability") {
      this.agents.set(frame.agent.id, frame.agent);
      this.render();
    }
  }

  reportActivity() {
    const mine = this.agents.get(this.me.id);
    const idleAway = mine && mine.status === "away" && !mine.away;
    const now = Date.now();
    if (!idleAway && now - this.lastReport < REPORT_EVERY_MS) return;
    if (this.send({ type: "activity" })) this.lastReport = now;
  }

  render() {
    const mine = this.agents.get(this.me.id);
    const status = mine ? mine.status : "offline";
    // The select shows the choice; an agent away for inactivity still chose online.
    this.els.select.value = mine && mine.away ? "away" : "online";
    this.els.dot.className = `status-dot status-${status}`;
    this.els.select.title = status === "away" && mine && !mine.away ? "Away: no activity for a while" : LABELS[status];
    const agents = Array.from(this.agents.values()).sort((a, b) => (a.name || "").localeCompare(b.name || ""));
    const online = agents.filter((a) => a.status === "online").length;
    this.els.summary.textContent = `Team: ${online} online`;
    clear(this.els.list);
    for (const agent of agents) {
      this.els.list.appendChild(
        h(
          "li",
          { class: `team-member status-${agent.status}`, dataset: { agentId: agent.id, status: agent.status } },
          h("span", { class: `status-dot status-${agent.status}`, "aria-hidden": "true" }),
          h("span", { class: "team-name", text: agent.id === this.me.id ? `${agent.name || "You"} (you)` : agent.name || "Agent" }),
          h("span", { class: "team-status", text: LABELS[agent.status] || agent.status }),
        ),
      );
    }
  }

  /** An agent's status as last heard, for other modules ("online", "away", "offline"). */
  statusOf(id) {
    const agent = this.agents.get(id);
    return agent ? agent.status : "offline";
  }
}

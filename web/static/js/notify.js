// Console notifications (docs/web.md, "Never miss a customer"): the tab title counts the
// conversations waiting for this agent ("(3) Support console", from GET /console/api/queue);
// a short tone (Web Audio, no sound file; on/off remembered in localStorage) and a desktop
// notification (Notification API; permission asked only when the agent clicks the button) for a
// new conversation, a handoff, and a customer message in a conversation assigned to the agent.
// A visually hidden live region says the same for screen readers.

import { h } from "./dom.js";

const SOUND_KEY = "chatserver.console.sound";
// Frames come in bursts (a ticket, its message, its assignment): the queue is read once after.
const REFRESH_DELAY_MS = 300;

export class Notifier {
  /**
   * root: element to render the controls into; me: {id}; request(method, path) -> parsed JSON;
   * viewing(ticketId) -> bool (that conversation is open and the page has focus);
   * open(ticketId): show a conversation (clicking a desktop notification).
   */
  constructor({ root, me, request, viewing, open }) {
    this.me = me;
    this.request = request;
    this.viewing = viewing;
    this.open = open;
    this.baseTitle = document.title;
    this.assignees = new Map(); // ticket id -> assignee id, as last heard
    this.waiting = 0;
    this.autoAssign = true;
    this.refreshTimer = null;
    this.audio = null;
    this.sound = localStorage.getItem(SOUND_KEY) !== "off";
    this.build(root);
  }

  build(root) {
    this.soundButton = h("button", { type: "button", class: "ghost sound-toggle", id: "sound-toggle", onclick: () => this.toggleSound() });
    this.permissionButton = h("button", {
      type: "button",
      class: "ghost notify-permission",
      id: "notify-permission",
      text: "Enable desktop notifications",
      onclick: () => this.askPermission(),
    });
    this.live = h("div", { class: "sr-only", id: "notify-live", role: "status", "aria-live": "polite" });
    root.append(this.soundButton, this.permissionButton, this.live);
    this.renderControls();
    // Browsers start audio only after a gesture on the page: resume it on the first one.
    window.addEventListener("pointerdown", () => this.audio && this.audio.resume(), { once: true, capture: true });
  }

  renderControls() {
    this.soundButton.textContent = this.sound ? "Sound on" : "Sound off";
    this.soundButton.setAttribute("aria-pressed", this.sound ? "true" : "false");
    const supported = "Notification" in window;
    this.permissionButton.hidden = !supported || Notification.permission !== "default";
  }

  toggleSound() {
    this.sound = !this.sound;
    localStorage.setItem(SOUND_KEY, this.sound ? "on" : "off");
    this.renderControls();
    if (this.sound) this.beep();
  }

  async askPermission() {
    if (!("Notification" in window)) return;
    try {
      await Notification.requestPermission();
    } catch (err) {
      // an old browser with the callback form only: nothing to do
    }
    this.renderControls();
  }

  beep() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    try {
      if (!this.audio) this.audio = new Context();
      const ctx = this.audio;
      const start = ctx.currentTime + 0.01;
      const gain = ctx.createGain();
      gain.gain.setValueAtTime(0.0001, start);
      gain.gain.exponentialRampToValueAtTime(0.15, start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.35);
      gain.connect(ctx.destination);
      // Two short tones, a fifth apart.
      for (const [freq, at] of [[660, 0], [990, 0.12]]) {
        const osc = ctx.createOscillator();
        osc.type = "sine";
        osc.frequency.value = freq;
        osc.connect(gain);
        osc.start(start + at);
        osc.stop(start + at + 0.2);
      }
    } catch (err) {
      // audio unavailable (no device, blocked): the title and the notification still say it
    }
  }

  /** Tell the agent: sound, desktop notification, live region. */
  alert(title, body, ticketId) {
    if (ticketId && this.viewing(ticketId)) return;
    this.live.textContent = `${title}: ${body}`;
    if (this.sound) this.beep();
    if ("Notification" in window && Notification.permission === "granted") {
      try {
        const note = new Notification(title, { body: body.slice(0, 200), tag: ticketId ? `ticket-${ticketId}` : undefined });
        note.onclick = () => {
          window.focus();
          if (ticketId) this.open(ticketId);
          note.close();
        };
      } catch (err) {
        // some browsers allow notifications only from a service worker: the title still counts
      }
    }
  }

  async refresh() {
    let queue;
    try {
      queue = await this.request("GET", "/console/api/queue");
    } catch (err) {
      return;
    }
    for (const id of queue.assigned) this.assignees.set(id, this.me.id);
    this.waiting = queue.waiting.length;
    document.title = this.waiting ? `(${this.waiting}) ${this.baseTitle}` : this.baseTitle;
  }

  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refresh(), REFRESH_DELAY_MS);
  }

  /** Frames of the inbox stream (console.js passes every one). */
  onFrame(frame) {
    if (frame.type === "inbox.ready") {
      this.scheduleRefresh();
      this.request("GET", "/console/api/availability")
        .then((body) => (this.autoAssign = body.auto_assign))
        .catch(() => {});
    } else if (frame.type === "inbox.ticket_created") {
      const ticket = frame.ticket;
      this.assignees.set(ticket.id, ticket.assignee_id);
      // With routing on, the agent hears of it when it is assigned to them.
      if (!this.autoAssign) this.alert("New conversation", ticket.subject, ticket.id);
    } else if (frame.type === "inbox.ticket_updated") {
      const ticket = frame.ticket;
      const before = this.assignees.get(ticket.id);
      this.assignees.set(ticket.id, ticket.assignee_id);
      const mine = ticket.assignee_id === this.me.id;
      if (frame.changes.includes("assignee_id") && mine && before !== this.me.id) {
        this.alert(ticket.waiting_for_agent ? "Handoff: a customer is waiting for you" : "New conversation for you", ticket.subject, ticket.id);
      } else if (frame.changes.includes("waiting_for_agent") && ticket.waiting_for_agent && (mine || (!ticket.assignee_id && !this.autoAssign))) {
        this.alert("Handoff: a customer asked for a person", ticket.subject, ticket.id);
      }
      if (mine || before === this.me.id) this.scheduleRefresh();
    } else if (frame.type === "inbox.message_created") {
      const message = frame.message;
      if (this.assignees.get(message.ticket_id) !== this.me.id) return;
      this.scheduleRefresh();
      if (message.author_kind === "customer" && message.visibility === "public") {
        this.alert("New message from a customer", message.body, message.ticket_id);
      }
    }
  }
}

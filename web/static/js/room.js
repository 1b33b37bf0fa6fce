// One ticket room over WebSocket, shared by the widget and the agent console (docs/protocol.md).
//
// It keeps the conversation complete across disconnects: it remembers the largest seq it has
// seen and reconnects with ?after_seq= (with backoff, and at once when the browser comes back
// online or the tab wakes up); messages are de-duplicated by seq; sends are queued with a
// client_id until acknowledged and resent after every reconnect, which the server answers with
// the original message instead of storing it twice.

const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 15000;
// An application ping every so often; a socket that does not answer in time is treated as dead
// (after a laptop sleeps, a socket can look open for minutes while nothing arrives).
const PING_EVERY_MS = 20000;
const PONG_TIMEOUT_MS = 8000;
// The server throttles typing broadcasts to one per 2 s; sending more often is wasted.
const TYPING_REFRESH_MS = 2000;

export class Room {
  /**
   * @param {object} options
   * @param {(afterSeq: number|null) => Promise<string>|string} options.url  the socket URL to open
   * @param {object} options.on  callbacks: status(state), joined(frame), message(msg), pending(list),
   *   stream(state), streamEnd(replyId, how, frame), ticket(ticket, changes), presence(kind, user, known),
   *   typing(user, active), error(frame), authFailed()
   */
  constructor({ url, on }) {
    this.urlFor = url;
    this.on = on || {};
    this.messages = new Map(); // seq -> message
    this.lastSeq = null; // null until the first joined frame
    this.pending = new Map(); // client_id -> {client_id, body, internal}
    this.streams = new Map(); // reply_id -> {reply_id, kind, text, in_reply_to}
    this.ticket = null;
    this.you = null;
    this.present = new Map(); // user id -> user
    this.ws = null;
    this.state = "idle"; // idle | connecting | online | offline | stopped
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.pingRef = 0;
    this.typingSentAt = 0;
    this.typingActive = false;
    this.hasJoined = false;
    this.onOnline = () => this.reconnectNow();
    this.onVisible = () => {
      if (document.visibilityState === "visible") this.checkAlive();
    };
  }

  start() {
    if (this.state !== "idle" && this.state !== "stopped") return;
    window.addEventListener("online", this.onOnline);
    document.addEventListener("visibilitychange", this.onVisible);
    this.connect();
  }

  stop() {
    this.setState("stopped");
    window.removeEventListener("online", this.onOnline);
    document.removeEventListener("visibilitychange", this.onVisible);
    clearTimeout(this.retryTimer);
    this.stopPings();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, "leaving");
    }
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.on.status?.(state);
  }

  async connect() {
    if (this.state === "stopped") return;
    clearTimeout(this.retryTimer);
    // "connecting" only before the first join succeeds or fails; after that, "offline" until joined.
    if (this.state !== "offline") this.setState(this.hasJoined ? "offline" : "connecting");
    let url;
    try {
      url = await this.urlFor(this.lastSeq);
    } catch (err) {
      if (err && err.status === 401) this.on.authFailed?.();
      this.scheduleRetry();
      return;
    }
    if (this.state === "stopped") return;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      this.handle(frame);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.stopPings();
      this.clearTyping();
      if (this.state === "stopped") return;
      this.setState("offline");
      if (event.code === 4009) return; // too many invalid frames: a bug here, retrying will not help
      if (event.code === 4003) this.on.authFailed?.();
      this.scheduleRetry();
    };
  }

  scheduleRetry() {
    if (this.state === "stopped") return;
    this.setState("offline");
    clearTimeout(this.retryTimer);
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** this.attempt);
    this.attempt += 1;
    // Full jitter on half the delay: clients dropped together do not come back together.
    const delay = base / 2 + Math.random() * (base / 2);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Reconnect immediately (network back, tab woke up, or the server asked for a resync). */
  reconnectNow() {
    if (this.state === "stopped" || this.state === "idle") return;
    this.attempt = 0;
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.state === "online") {
      this.checkAlive();
      return;
    }
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(4000, "reconnecting");
    }
    this.connect();
  }

  checkAlive() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ping();
    else if (this.state !== "connecting") this.reconnectNow();
  }

  startPings() {
    this.stopPings();
    this.pingTimer = setInterval(() => this.ping(), PING_EVERY_MS);
  }

  stopPings() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pingTimer = null;
    this.pongTimer = null;
  }

  ping() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.pongTimer) return;
    this.pingRef += 1;
    this.rawSend({ type: "ping", ref: this.pingRef });
    this.pongTimer = setTimeout(() => {
      this.pongTimer = null;
      // No answer: the connection is dead even if the browser has not noticed yet.
      if (this.ws) {
        const ws = this.ws;
        ws.onclose({ code: 1006 });
        ws.close();
      }
    }, PONG_TIMEOUT_MS);
  }

  rawSend(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  // ---- sending ----------------------------------------------------------------------------

  /** Queue a message; it is sent now if connected, else after the next join. */
  send(body, { internal = false, clientId, attachments = [] } = {}) {
    const entry = { client_id: clientId || newId(), body, internal, attachments, created_at: new Date().toISOString() };
    this.pending.set(entry.client_id, entry);
    this.on.pending?.(this.pendingList());
    if (this.state === "online") this.sendPending(entry);
    this.setTyping(false);
    return entry.client_id;
  }

  sendPending(entry) {
    const frame = { type: "message.send", client_id: entry.client_id, body: entry.body };
    if (entry.internal) frame.internal = true;
    if (entry.attachments.length) frame.attachment_ids = entry.attachments.map((file) => file.id);
    this.rawSend(frame);
  }

  pendingList() {
    return Array.from(this.pending.values());
  }

  /** Any other frame (ticket.update, ai.takeover, copilot.request …); false when offline. */
  sendFrame(frame) {
    return this.state === "online" && this.rawSend(frame);
  }

  setTyping(active) {
    if (this.state !== "online") return;
    const now = Date.now();
    if (active) {
      if (this.typingActive && now - this.typingSentAt < TYPING_REFRESH_MS) return;
      this.typingActive = true;
      this.typingSentAt = now;
      this.rawSend({ type: "typing", active: true });
    } else if (this.typingActive) {
      this.typingActive = false;
      this.rawSend({ type: "typing", active: false });
    }
  }

  clearTyping() {
    this.typingActive = false;
    for (const user of this.present.values()) this.on.typing?.(user, false);
  }

  // ---- receiving --------------------------------------------------------------------------

  handle(frame) {
    switch (frame.type) {
      case "joined":
        return this.onJoined(frame);
      case "message.created":
        return this.addMessage(frame.message);
      case "ack":
        this.addMessage(frame.message);
        return this.settle(frame.client_id);
      case "ticket.updated":
        this.ticket = frame.ticket;
        return this.on.ticket?.(frame.ticket, frame.changes || []);
      case "presence.joined": {
        // Agents hear again of an agent already present when that agent starts writing to the
        // customer (docs/protocol.md): `known` says so.
        const known = this.present.has(frame.user.id);
        this.present.set(frame.user.id, frame.user);
        return this.on.presence?.("joined", frame.user, known);
      }
      case "presence.left":
        this.present.delete(frame.user.id);
        this.on.typing?.(frame.user, false);
        return this.on.presence?.("left", frame.user);
      case "typing":
        if (this.you && frame.user.id === this.you.id) return;
        return this.on.typing?.(frame.user, frame.active);
      case "ai.started":
        return this.startStream(frame.reply_id, frame.kind, frame.in_reply_to, "");
      case "ai.delta":
        return this.addDelta(frame.reply_id, frame.offset, frame.text);
      case "ai.completed":
        if (frame.message) this.addMessage(frame.message);
        return this.endStream(frame.reply_id, "completed", frame);
      case "ai.failed":
        if (frame.partial) this.addMessage(frame.partial);
        return this.endStream(frame.reply_id, "failed", frame);
      case "ai.cancelled":
        return this.endStream(frame.reply_id, "cancelled", frame);
      case "ai.failure_detail":
        // Staff only: what the AI service said about the failure just reported.
        return this.on.failureDetail?.(frame);
      case "resync":
        return this.reconnectNow();
      case "pong":
        clearTimeout(this.pongTimer);
        this.pongTimer = null;
        return undefined;
      case "error":
        if (frame.code === "rate_limited" && frame.ref && this.pending.has(frame.ref)) {
          // Still pending: try this one again once the bucket has refilled.
          const entry = this.pending.get(frame.ref);
          setTimeout(() => this.state === "online" && this.pending.has(entry.client_id) && this.sendPending(entry), Math.max(200, (frame.retry_after || 1) * 1000));
          return undefined;
        }
        if (frame.ref && this.pending.has(frame.ref)) {
          // Refused for good (too long, forbidden…): stop resending it.
          this.pending.delete(frame.ref);
          this.on.pending?.(this.pendingList());
        }
        return this.on.error?.(frame);
      default:
        return undefined;
    }
  }

  onJoined(frame) {
    if (frame.resumed && frame.has_more) {
      // Away for more than a resume holds (500 messages): start over from the latest page.
      this.lastSeq = null;
      this.messages.clear();
      this.reconnectNow();
      return;
    }
    const first = !this.hasJoined;
    this.hasJoined = true;
    this.attempt = 0;
    this.ticket = frame.ticket;
    this.you = frame.you;
    this.present = new Map(frame.present.map((u) => [u.id, u]));
    if (!frame.resumed) this.messages.clear();
    const fresh = [];
    for (const message of frame.messages) {
      if (!this.messages.has(message.seq)) fresh.push(message);
      this.messages.set(message.seq, message);
    }
    this.lastSeq = Math.max(this.lastSeq ?? 0, frame.last_seq);
    // Replies that ended while we were away are in the messages now; the rest continue.
    const live = new Set(frame.streams.map((s) => s.reply_id));
    for (const replyId of Array.from(this.streams.keys())) {
      if (!live.has(replyId)) this.endStream(replyId, "gone", null);
    }
    this.settleFrom(frame.messages);
    this.setState("online");
    this.startPings();
    this.on.joined?.(frame, { first, fresh });
    for (const s of frame.streams) {
      const known = this.streams.get(s.reply_id);
      if (known) this.addDelta(s.reply_id, 0, s.text);
      else this.startStream(s.reply_id, s.kind, s.in_reply_to, s.text);
    }
    // Whatever was not acknowledged goes again, with the same client_id.
    for (const entry of this.pending.values()) this.sendPending(entry);
  }

  addMessage(message) {
    if (!message || typeof message.seq !== "number") return;
    const isNew = !this.messages.has(message.seq);
    this.messages.set(message.seq, message);
    if (this.lastSeq === null || message.seq > this.lastSeq) this.lastSeq = message.seq;
    this.settleFrom([message]);
    if (isNew) this.on.message?.(message);
  }

  settleFrom(messages) {
    if (!this.you) return;
    for (const m of messages) {
      if (m.client_id && m.author_id === this.you.id) this.settle(m.client_id);
    }
  }

  settle(clientId) {
    if (clientId && this.pending.delete(clientId)) this.on.pending?.(this.pendingList());
  }

  startStream(replyId, kind, inReplyTo, text) {
    const state = { reply_id: replyId, kind: kind || "reply", in_reply_to: inReplyTo, text: text || "" };
    this.streams.set(replyId, state);
    this.on.stream?.(state);
  }

  addDelta(replyId, offset, text) {
    let state = this.streams.get(replyId);
    if (!state) {
      if (offset !== 0) return; // the start of this reply never reached us; its completion will
      state = { reply_id: replyId, kind: "reply", in_reply_to: null, text: "" };
      this.streams.set(replyId, state);
    }
    const have = state.text.length;
    const end = offset + text.length;
    if (end <= have || offset > have) return; // a repeat, or a gap (the final message fills it)
    state.text += text.slice(have - offset);
    this.on.stream?.(state);
  }

  endStream(replyId, how, frame) {
    const state = this.streams.get(replyId);
    this.streams.delete(replyId);
    this.on.streamEnd?.(replyId, how, frame, state);
  }

  sortedMessages() {
    return Array.from(this.messages.values()).sort((a, b) => a.seq - b.seq);
  }

  /** Older history (paged over REST) goes in front. */
  addOlder(messages) {
    const fresh = messages.filter((m) => !this.messages.has(m.seq));
    for (const m of fresh) this.messages.set(m.seq, m);
    return fresh;
  }

  oldestSeq() {
    let oldest = null;
    for (const seq of this.messages.keys()) if (oldest === null || seq < oldest) oldest = seq;
    return oldest;
  }
}

function newId() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  return `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/** The ws:// or wss:// URL of a path on this page's server. */
export function socketUrl(path, origin = window.location.origin) {
  const url = new URL(path, origin);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

/** The JSON error body of a failed fetch, as an Error with status and code. */
export async function apiError(response) {
  let code = "http_error";
  let message = `Request failed (${response.status})`;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch (err) {
    // not JSON: keep the generic message
  }
  const error = new Error(message);
  error.status = response.status;
  error.code = code;
  return error;
}

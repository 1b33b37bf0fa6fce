// A conversation drawn into an <ol>: stored messages in seq order, then AI replies still streaming,
// then the user's own messages not yet acknowledged. Shared by the widget and the console; each
// says how a message looks through `describe`. Message text is Markdown, rendered safely by
// markdown.js (renderBody); everything else goes in as text (dom.js).

import { formatTime, h, stickToBottom } from "./dom.js";
import { fillBubble, safeHref } from "./markdown.js";

const DEFAULT_LABELS = {
  sources: "Sources",
  incomplete: "Incomplete reply",
  retry: "Try again",
  replying: "Assistant is replying…",
  tookOver: "A person is taking over this conversation.",
};

/** The bubble of one message (or of a pending entry / a stream): its body as Markdown. */
export function renderBody(message) {
  const bubble = h("div", { class: "bubble" });
  fillBubble(bubble, message.body ?? message.text ?? "");
  return bubble;
}

export class Thread {
  /**
   * @param {HTMLOListElement} list
   * @param {object} options
   * @param {(message) => {kind: string, author: string|null, note?: string}} options.describe
   * @param {string} options.pendingLabel  shown under unsent messages ("Sending…")
   * @param {string} options.streamAuthor  the author label of streaming AI replies
   * @param {string} [options.locale]
   * @param {() => Node|null} [options.header]  drawn first (the widget's greeting)
   * @param {object} [options.labels]  sources, incomplete, retry, replying, tookOver (translated)
   * @param {() => void} [options.onRetry]  a "Try again" button under a failed reply sends this
   */
  constructor(list, { describe, pendingLabel, streamAuthor, locale, header, labels, onRetry }) {
    this.list = list;
    this.describe = describe;
    this.pendingLabel = pendingLabel;
    this.streamAuthor = streamAuthor;
    this.locale = locale;
    this.header = header || (() => null);
    this.labels = { ...DEFAULT_LABELS, ...(labels || {}) };
    this.onRetry = onRetry || null;
    this.frames = new Map(); // reply id -> pending animation frame (one re-render per frame)
    this.timed = new Map(); // key -> {at, text}: lines placed by time (addTimedLine)
  }

  /** Redraw everything from a Room (after the first join, or a new room). */
  reset(room) {
    stickToBottom(this.list, () => {
      while (this.list.firstChild) this.list.removeChild(this.list.firstChild);
      const header = this.header();
      if (header) this.list.appendChild(header);
      if (room) {
        for (const message of room.sortedMessages()) this.list.appendChild(this.messageRow(message));
        for (const state of room.streams.values()) if (state.kind === "reply") this.list.appendChild(this.streamRow(state));
        this.drawPending(room.pendingList());
      }
      for (const key of this.timed.keys()) this.placeTimed(key);
    });
    this.list.scrollTop = this.list.scrollHeight;
  }

  messageRow(message) {
    const look = this.describe(message);
    const meta = message.metadata || {};
    const incomplete = message.author_kind === "ai" && meta.incomplete === true;
    const classes = [`msg msg-${look.kind}`];
    if (look.note) classes.push("msg-note");
    if (incomplete) classes.push("msg-incomplete");
    return h(
      "li",
      { class: classes.join(" "), dataset: { seq: String(message.seq), clientId: message.client_id || "", at: message.created_at || "" } },
      look.author ? h("div", { class: "author", text: look.author }) : null,
      renderBody(message),
      message.author_kind === "ai" ? this.sources(meta.citations) : null,
      h(
        "div",
        { class: "meta" },
        incomplete ? h("span", { class: "incomplete-label", text: this.labels.incomplete }) : null,
        look.note ? h("span", { class: "note-label", text: look.note }) : null,
        h("time", { datetime: message.created_at, text: formatTime(message.created_at, this.locale) }),
      ),
    );
  }

  /** The knowledge-base articles an AI reply was grounded in, linked when they have a URL. */
  sources(citations) {
    if (!Array.isArray(citations) || citations.length === 0) return null;
    const items = [];
    for (const cited of citations) {
      if (!cited || typeof cited.title !== "string" || !cited.title) continue;
      const link = typeof cited.url === "string" && /^https?:\/\//i.test(cited.url) && safeHref(cited.url);
      items.push(
        h(
          "li",
          {},
          link ? h("a", { href: cited.url, target: "_blank", rel: "noopener noreferrer", text: cited.title }) : h("span", { text: cited.title }),
        ),
      );
    }
    if (!items.length) return null;
    return h("div", { class: "sources" }, h("span", { class: "sources-label", text: `${this.labels.sources}:` }), h("ul", {}, items));
  }

  /** Insert or replace one stored message, keeping seq order. */
  addMessage(message) {
    stickToBottom(this.list, () => {
      const row = this.messageRow(message);
      const existing = this.list.querySelector(`li[data-seq="${message.seq}"]`);
      if (existing) {
        existing.replaceWith(row);
        return;
      }
      const later = Array.from(this.list.querySelectorAll("li[data-seq]")).find((li) => Number(li.dataset.seq) > message.seq);
      this.list.insertBefore(row, later || this.firstTrailing());
    });
  }

  /** Older history paged in above what is shown; keeps the reader's scroll position. */
  addOlder(messages) {
    const before = this.list.scrollHeight;
    const first = this.list.querySelector("li[data-seq]") || this.firstTrailing();
    for (const message of messages.slice().sort((a, b) => a.seq - b.seq)) this.list.insertBefore(this.messageRow(message), first);
    for (const key of this.timed.keys()) this.placeTimed(key);
    this.list.scrollTop += this.list.scrollHeight - before;
  }

  /**
   * A compact line placed by time among the stored messages (the console's activity log; not a
   * message, so it has no seq). `at` is an ISO time as the server writes it (UTC, so the strings
   * order as the times do); `key` makes it idempotent. Kept across reset().
   */
  addTimedLine(key, at, text) {
    this.timed.set(key, { at, text });
    stickToBottom(this.list, () => this.placeTimed(key));
  }

  placeTimed(key) {
    const { at, text } = this.timed.get(key);
    this.list.querySelector(`li[data-timed="${CSS.escape(key)}"]`)?.remove();
    const row = h("li", { class: "msg msg-event msg-activity", dataset: { timed: key, at } }, h("div", { class: "bubble", text }));
    const later = Array.from(this.list.querySelectorAll("li[data-seq], li[data-timed]")).find((li) => li.dataset.at > at);
    this.list.insertBefore(row, later || this.firstTrailing());
  }

  /** A line about something that happened (an agent joined…), at the end of the stored messages. */
  addEvent(text) {
    stickToBottom(this.list, () => {
      this.list.insertBefore(h("li", { class: "msg msg-event" }, h("div", { class: "bubble", text })), this.firstTrailing());
    });
  }

  /** A line built elsewhere (the console's tool calls), at the end of the stored messages. */
  addNode(li) {
    stickToBottom(this.list, () => this.list.insertBefore(li, this.firstTrailing()));
  }

  /** Show (or remove) the "Try again" button after the last failed reply. */
  setRetry(show) {
    const existing = this.list.querySelector("li.msg-retry");
    if (!show || !this.onRetry) {
      if (existing) existing.remove();
      return;
    }
    if (existing) {
      this.list.insertBefore(existing, this.firstTrailing()); // keep it last among stored rows
      return;
    }
    stickToBottom(this.list, () => {
      const button = h("button", { type: "button", class: "retry-button", text: this.labels.retry, onclick: () => this.onRetry() });
      this.list.insertBefore(h("li", { class: "msg msg-retry" }, button), this.firstTrailing());
    });
  }

  firstTrailing() {
    return this.list.querySelector("li.msg-streaming, li.msg-pending");
  }

  setPending(entries) {
    stickToBottom(this.list, () => {
      for (const row of this.list.querySelectorAll("li.msg-pending")) row.remove();
      this.drawPending(entries);
    });
  }

  drawPending(entries) {
    for (const entry of entries) {
      this.list.appendChild(
        h(
          "li",
          { class: `msg msg-mine msg-pending${entry.internal ? " msg-note" : ""}`, dataset: { clientId: entry.client_id } },
          renderBody(entry),
          h("div", { class: "meta", text: this.pendingLabel }),
        ),
      );
    }
  }

  streamRow(state) {
    // The growing text is hidden from screen readers: the live list announces the stored reply
    // once, when it completes, instead of every re-render of the partial text.
    const bubble = h("div", { class: "bubble", "aria-hidden": "true" });
    this.fillStream(bubble, state.text);
    return h(
      "li",
      { class: "msg msg-ai msg-streaming", dataset: { replyId: state.reply_id }, "aria-busy": "true" },
      h("div", { class: "author", text: this.streamAuthor }),
      h("span", { class: "sr-only", text: this.labels.replying }),
      bubble,
    );
  }

  fillStream(bubble, text) {
    fillBubble(bubble, text);
    // Links inside an aria-hidden bubble must not take focus (axe: aria-hidden-focus).
    for (const link of bubble.querySelectorAll("a")) link.setAttribute("tabindex", "-1");
  }

  stream(state) {
    const existing = this.streamElement(state.reply_id);
    if (!existing) {
      stickToBottom(this.list, () => this.list.insertBefore(this.streamRow(state), this.list.querySelector("li.msg-pending")));
      return;
    }
    // Deltas arrive many times a second: re-render at most once per frame, the latest text,
    // replacing the bubble's children in one step (no flash of empty content).
    if (this.frames.has(state.reply_id)) return;
    const draw = () => {
      this.frames.delete(state.reply_id);
      const row = this.streamElement(state.reply_id);
      if (row) stickToBottom(this.list, () => this.fillStream(row.querySelector(".bubble"), state.text));
    };
    // A hidden tab gets no animation frames: a timer there, so the text is current on return.
    const useFrame = typeof requestAnimationFrame === "function" && !document.hidden;
    this.frames.set(state.reply_id, useFrame ? { frame: requestAnimationFrame(draw) } : { timer: setTimeout(draw, 0) });
  }

  endStream(replyId) {
    this.cancelFrame(replyId);
    const row = this.streamElement(replyId);
    if (row) row.remove();
  }

  /** A reply stopped before it was stored (a takeover): keep its text, with a note saying why. */
  keepStream(replyId, text, note) {
    this.cancelFrame(replyId);
    const row = this.streamElement(replyId);
    if (!row) return;
    if (!text) {
      row.remove();
      if (note) this.addEvent(note);
      return;
    }
    stickToBottom(this.list, () => {
      const kept = h(
        "li",
        { class: "msg msg-ai msg-incomplete msg-stopped", dataset: { replyId } },
        h("div", { class: "author", text: this.streamAuthor }),
        renderBody({ body: text }),
        h("div", { class: "meta" }, h("span", { class: "incomplete-label", text: note || this.labels.tookOver })),
      );
      row.remove();
      this.list.insertBefore(kept, this.firstTrailing());
    });
  }

  cancelFrame(replyId) {
    const pending = this.frames.get(replyId);
    if (pending === undefined) return;
    this.frames.delete(replyId);
    if ("frame" in pending) cancelAnimationFrame(pending.frame);
    else clearTimeout(pending.timer);
  }

  streamElement(replyId) {
    return Array.from(this.list.querySelectorAll("li.msg-streaming")).find((li) => li.dataset.replyId === replyId) || null;
  }
}

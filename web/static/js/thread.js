// A conversation drawn into an <ol>: stored messages in seq order, then AI replies still streaming,
// then the user's own messages not yet acknowledged. Shared by the widget and the console; each
// says how a message looks through `describe`. All text goes in as text (dom.js).

import { formatTime, h, stickToBottom } from "./dom.js";

export class Thread {
  /**
   * @param {HTMLOListElement} list
   * @param {object} options
   * @param {(message) => {kind: string, author: string|null, note?: string}} options.describe
   * @param {string} options.pendingLabel  shown under unsent messages ("Sending…")
   * @param {string} options.streamAuthor  the author label of streaming AI replies
   * @param {string} [options.locale]
   * @param {() => Node|null} [options.header]  drawn first (the widget's greeting)
   */
  constructor(list, { describe, pendingLabel, streamAuthor, locale, header }) {
    this.list = list;
    this.describe = describe;
    this.pendingLabel = pendingLabel;
    this.streamAuthor = streamAuthor;
    this.locale = locale;
    this.header = header || (() => null);
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
    });
    this.list.scrollTop = this.list.scrollHeight;
  }

  messageRow(message) {
    const look = this.describe(message);
    return h(
      "li",
      {
        class: `msg msg-${look.kind}${look.note ? " msg-note" : ""}`,
        dataset: { seq: String(message.seq), clientId: message.client_id || "" },
      },
      look.author ? h("div", { class: "author", text: look.author }) : null,
      h("div", { class: "bubble", text: message.body }),
      h(
        "div",
        { class: "meta" },
        look.note ? h("span", { class: "note-label", text: look.note }) : null,
        h("time", { datetime: message.created_at, text: formatTime(message.created_at, this.locale) }),
      ),
    );
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
    this.list.scrollTop += this.list.scrollHeight - before;
  }

  /** A line about something that happened (an agent joined…), at the end of the stored messages. */
  addEvent(text) {
    stickToBottom(this.list, () => {
      this.list.insertBefore(h("li", { class: "msg msg-event" }, h("div", { class: "bubble", text })), this.firstTrailing());
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
          h("div", { class: "bubble", text: entry.body }),
          h("div", { class: "meta", text: this.pendingLabel }),
        ),
      );
    }
  }

  streamRow(state) {
    return h(
      "li",
      { class: "msg msg-ai msg-streaming", dataset: { replyId: state.reply_id }, "aria-busy": "true" },
      h("div", { class: "author", text: this.streamAuthor }),
      h("div", { class: "bubble", text: state.text }),
    );
  }

  stream(state) {
    stickToBottom(this.list, () => {
      const existing = this.streamElement(state.reply_id);
      if (existing) existing.querySelector(".bubble").textContent = state.text;
      else this.list.insertBefore(this.streamRow(state), this.list.querySelector("li.msg-pending"));
    });
  }

  endStream(replyId) {
    const row = this.streamElement(replyId);
    if (row) row.remove();
  }

  streamElement(replyId) {
    return Array.from(this.list.querySelectorAll("li.msg-streaming")).find((li) => li.dataset.replyId === replyId) || null;
  }
}

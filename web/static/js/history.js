// The widget's conversation history (GET /widget/conversations, docs/web.md): the visitor's
// earlier conversations (subject, status, last activity, a preview of the newest public message),
// each one a button that opens it, and "New conversation".

import { clear, formatTime, h } from "./dom.js";

const PREVIEW_CHARS = 90;

const STRINGS = {
  en: {
    historyOpen: "Your conversations",
    historyBack: "Back to the conversation",
    historyNew: "New conversation",
    historyEmpty: "No conversations yet.",
    historyFailed: "Your conversations couldn't be loaded.",
    historyMore: "Show more",
    historyCurrent: "Current",
    historyNoMessages: "No messages yet",
    historyYou: "You: ",
    statusOpen: "Open",
    statusPending: "Open",
    statusResolved: "Resolved",
    statusClosed: "Closed",
  },
  fr: {
    historyOpen: "Vos conversations",
    historyBack: "Retour à la conversation",
    historyNew: "Nouvelle conversation",
    historyEmpty: "Aucune conversation pour le moment.",
    historyFailed: "Vos conversations n'ont pas pu être chargées.",
    historyMore: "Afficher plus",
    historyCurrent: "En cours",
    historyNoMessages: "Aucun message",
    historyYou: "Vous : ",
    statusOpen: "Ouverte",
    statusPending: "Ouverte",
    statusResolved: "Résolue",
    statusClosed: "Fermée",
  },
  de: {
    historyOpen: "Ihre Gespräche",
    historyBack: "Zurück zum Gespräch",
    historyNew: "Neues Gespräch",
    historyEmpty: "Noch keine Gespräche.",
    historyFailed: "Ihre Gespräche konnten nicht geladen werden.",
    historyMore: "Mehr anzeigen",
    historyCurrent: "Aktuell",
    historyNoMessages: "Noch keine Nachrichten",
    historyYou: "Sie: ",
    statusOpen: "Offen",
    statusPending: "Offen",
    statusResolved: "Gelöst",
    statusClosed: "Geschlossen",
  },
  es: {
    historyOpen: "Tus conversaciones",
    historyBack: "Volver a la conversación",
    historyNew: "Nueva conversación",
    historyEmpty: "Aún no hay conversaciones.",
    historyFailed: "No se pudieron cargar tus conversaciones.",
    historyMore: "Ver más",
    historyCurrent: "Actual",
    historyNoMessages: "Aún no hay mensajes",
    historyYou: "Tú: ",
    statusOpen: "Abierta",
    statusPending: "Abierta",
    statusResolved: "Resuelta",
    statusClosed: "Cerrada",
  },
};

export function historyStrings(locale, overrides = {}) {
  const base = STRINGS[String(locale || "en").slice(0, 2).toLowerCase()] || STRINGS.en;
  const out = { ...STRINGS.en, ...base };
  for (const key of Object.keys(STRINGS.en)) if (typeof overrides[key] === "string") out[key] = overrides[key];
  return out;
}

const STATUS_KEYS = { open: "statusOpen", pending: "statusPending", resolved: "statusResolved", closed: "statusClosed" };

/** A message as one short line of plain text (its Markdown left as typed). */
function previewText(message, t) {
  if (!message) return t.historyNoMessages;
  let text = String(message.body || "").split("\n").find((line) => line.trim()) || "";
  if (!text && message.attachments && message.attachments.length) text = `📎 ${message.attachments[0].filename}`;
  text = text.trim();
  if (text.length > PREVIEW_CHARS) text = `${text.slice(0, PREVIEW_CHARS - 1)}…`;
  return (message.author_kind === "customer" ? t.historyYou : "") + text;
}

/**
 * @param {object} options
 * @param {HTMLElement} options.root  the <section> the list is drawn into
 * @param {object} options.strings  historyStrings(...)
 * @param {string} options.locale
 * @param {(cursor: string|null) => Promise<{conversations: object[], next_cursor: string|null}>} options.load
 * @param {() => string|null} options.currentId
 * @param {(ticketId: string) => void} options.onOpen
 * @param {() => void} options.onNew
 * @param {() => void} options.onBack
 */
export class HistoryView {
  constructor({ root, strings, locale, load, currentId, onOpen, onNew, onBack }) {
    this.root = root;
    this.t = strings;
    this.locale = locale;
    this.load = load;
    this.currentId = currentId;
    this.onOpen = onOpen;
    this.onNew = onNew;
    this.onBack = onBack;
    this.rows = [];
    this.cursor = null;
    this.loading = 0;
  }

  /** Draw the list afresh (the first page). */
  async show() {
    const load = ++this.loading;
    this.rows = [];
    this.cursor = null;
    this.draw({ busy: true });
    try {
      const page = await this.load(null);
      if (load !== this.loading) return;
      this.rows = page.conversations;
      this.cursor = page.next_cursor;
      this.draw({});
    } catch (err) {
      if (load === this.loading) this.draw({ failed: true });
    }
  }

  async more() {
    const load = ++this.loading;
    try {
      const page = await this.load(this.cursor);
      if (load !== this.loading) return;
      const known = new Set(this.rows.map((r) => r.ticket.id));
      this.rows.push(...page.conversations.filter((r) => !known.has(r.ticket.id)));
      this.cursor = page.next_cursor;
      this.draw({});
    } catch (err) {
      if (load === this.loading) this.draw({ failed: true });
    }
  }

  draw({ busy = false, failed = false }) {
    const t = this.t;
    clear(this.root);
    const head = h(
      "div",
      { class: "history-head" },
      h("button", { type: "button", class: "link-button history-back", text: `← ${t.historyBack}`, onclick: () => this.onBack() }),
      h("button", { type: "button", class: "link-button history-new", text: `+ ${t.historyNew}`, onclick: () => this.onNew() }),
    );
    const title = h("h2", { class: "history-title", id: "history-title", text: t.historyOpen });
    const list = h("ul", { class: "history-list", "aria-labelledby": "history-title", "aria-busy": busy ? "true" : null });
    const current = this.currentId();
    for (const row of this.rows) list.appendChild(this.item(row, current));
    const notes = [];
    if (failed) notes.push(h("p", { class: "history-note", role: "alert", text: t.historyFailed }));
    else if (!busy && !this.rows.length) notes.push(h("p", { class: "history-note", text: t.historyEmpty }));
    const more = this.cursor && !busy ? h("button", { type: "button", class: "link-button history-more", text: t.historyMore, onclick: () => this.more() }) : null;
    this.root.append(head, title, list, ...notes);
    if (more) this.root.appendChild(more);
  }

  item(row, current) {
    const { ticket, last_message: last } = row;
    const t = this.t;
    const isCurrent = ticket.id === current;
    const status = t[STATUS_KEYS[ticket.status]] || ticket.status;
    return h(
      "li",
      {},
      h(
        "button",
        {
          type: "button",
          class: `history-item${isCurrent ? " is-current" : ""}`,
          "aria-current": isCurrent ? "true" : null,
          dataset: { ticketId: ticket.id },
          onclick: () => this.onOpen(ticket.id),
        },
        h(
          "span",
          { class: "history-top" },
          h("span", { class: "history-subject", text: ticket.subject }),
          h("time", { datetime: ticket.last_activity_at, text: formatTime(ticket.last_activity_at, this.locale) }),
        ),
        h("span", { class: "history-preview", text: previewText(last, t) }),
        h(
          "span",
          { class: "history-badges" },
          h("span", { class: `history-status status-${ticket.status}`, text: status }),
          isCurrent ? h("span", { class: "history-current", text: t.historyCurrent }) : null,
        ),
      ),
    );
  }
}

// Canned responses in the console's composer (docs/web.md, "Canned responses"): typing `/` (at the
// start or after a space) opens a list of the agent's responses (GET /canned-responses: the shared
// ones and their own), filtered as they type; arrow keys move, Enter or Tab inserts, Escape closes.
// The inserted text has its variables filled in: {{customer.name}}, {{customer.email}},
// {{agent.name}}, {{ticket.id}}. A variable with no value, or one we do not know, stays as typed.

import { clear, h } from "./dom.js";

const MAX_SHOWN = 8;
// Values go into a reply that is read as Markdown: a customer named "[x](https://evil)" must stay
// text, so what Markdown would read as formatting or links is escaped.
const MARKDOWN_SPECIAL = /[\\`*_[\]<>~|]/g;

export function escapeMarkdown(text) {
  return String(text).replace(MARKDOWN_SPECIAL, (c) => `\\${c}`);
}

/** `body` with {{name}} replaced by values[name] (plain text, Markdown-escaped). */
export function fillVariables(body, values) {
  return String(body).replace(/\{\{\s*([a-z_]+(?:\.[a-z_]+)*)\s*\}\}/gi, (match, name) => {
    const value = values[name.toLowerCase()];
    return typeof value === "string" && value !== "" ? escapeMarkdown(value) : match;
  });
}

/** The `/query` being typed just before the caret, or null. */
export function slashQuery(value, caret) {
  const match = /(^|\s)\/([a-z0-9_-]*)$/i.exec(value.slice(0, caret));
  if (!match) return null;
  return { start: caret - match[2].length - 1, query: match[2].toLowerCase() };
}

let pickers = 0;

export class CannedPicker {
  /**
   * @param {object} options
   * @param {HTMLTextAreaElement} options.input  the composer
   * @param {(path: string) => Promise<any>} options.api
   * @param {() => Record<string, string>} options.variables  current values, e.g. {"customer.name": "Cara"}
   */
  constructor({ input, api, variables }) {
    this.input = input;
    this.api = api;
    this.variables = variables;
    this.items = null; // loaded on first use
    this.loading = null;
    this.shown = [];
    this.active = 0;
    this.token = null;
    this.id = `canned-${++pickers}`;
    this.list = h("ul", { class: "canned-list", id: this.id, role: "listbox", "aria-label": "Canned responses", hidden: true });
    this.status = h("span", { class: "sr-only", role: "status", "aria-live": "polite" });
    this.el = h("div", { class: "canned" }, this.list, this.status);
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", this.id);
    input.addEventListener("input", () => this.update());
    input.addEventListener("keydown", (event) => this.onKey(event));
    input.addEventListener("blur", () => setTimeout(() => this.close(), 150));
    input.addEventListener("click", () => this.update());
  }

  async load() {
    if (this.items) return this.items;
    if (!this.loading) {
      this.loading = this.api("/canned-responses")
        .then((body) => (this.items = body.canned_responses))
        .finally(() => (this.loading = null));
    }
    return this.loading;
  }

  async update() {
    const token = slashQuery(this.input.value, this.input.selectionStart);
    if (!token) return this.close();
    let items;
    try {
      items = await this.load();
    } catch (err) {
      return this.close();
    }
    // The text may have changed while the list loaded.
    const now = slashQuery(this.input.value, this.input.selectionStart);
    if (!now || now.query !== token.query) return undefined;
    this.token = now;
    const q = now.query;
    const starts = items.filter((item) => item.shortcut.startsWith(q));
    const contains = items.filter((item) => !item.shortcut.startsWith(q) && (item.shortcut.includes(q) || item.body.toLowerCase().includes(q)));
    this.shown = [...starts, ...contains].slice(0, MAX_SHOWN);
    this.active = 0;
    this.render();
    return undefined;
  }

  render() {
    clear(this.list);
    if (!this.shown.length) {
      this.list.hidden = true;
      this.input.removeAttribute("aria-activedescendant");
      this.status.textContent = this.token ? "No canned response matches" : "";
      return;
    }
    this.shown.forEach((item, index) => {
      const selected = index === this.active;
      this.list.appendChild(
        h(
          "li",
          {
            id: `${this.id}-${index}`,
            role: "option",
            class: `canned-option${selected ? " active" : ""}`,
            "aria-selected": selected ? "true" : "false",
            // mousedown, not click: the textarea keeps the focus (and the caret).
            onmousedown: (event) => {
              event.preventDefault();
              this.insert(item);
            },
          },
          h("span", { class: "canned-shortcut", text: `/${item.shortcut}` }),
          item.shared ? h("span", { class: "canned-shared", text: "shared" }) : null,
          h("span", { class: "canned-preview", text: item.body.slice(0, 120) }),
        ),
      );
    });
    this.list.hidden = false;
    this.input.setAttribute("aria-activedescendant", `${this.id}-${this.active}`);
    this.status.textContent = `${this.shown.length} canned response${this.shown.length === 1 ? "" : "s"}; arrow keys to choose, Enter to insert`;
    this.list.querySelector(".active")?.scrollIntoView?.({ block: "nearest" });
  }

  isOpen() {
    return !this.list.hidden && this.shown.length > 0;
  }

  onKey(event) {
    if (!this.isOpen() || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      this.active = (this.active + step + this.shown.length) % this.shown.length;
      this.render();
    } else if (event.key === "Enter" || event.key === "Tab") {
      event.preventDefault();
      this.insert(this.shown[this.active]);
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      this.close();
    }
  }

  insert(item) {
    const token = this.token;
    if (!item || !token) return;
    const text = fillVariables(item.body, this.variables());
    const value = this.input.value;
    const end = token.start + 1 + token.query.length;
    this.input.value = value.slice(0, token.start) + text + value.slice(end);
    const caret = token.start + text.length;
    this.input.setSelectionRange(caret, caret);
    this.close();
    this.input.focus();
    this.input.dispatchEvent(new Event("input", { bubbles: true }));
  }

  close() {
    this.shown = [];
    this.token = null;
    this.list.hidden = true;
    clear(this.list);
    this.input.removeAttribute("aria-activedescendant");
    this.status.textContent = "";
  }

  /** Forget the loaded list (another ticket, or responses changed). */
  refresh() {
    this.items = null;
  }
}

/**
 * The agent's own canned responses in a modal dialog: save the composer's text under a shortcut,
 * and delete old ones. (Shared responses are managed by admins, /console/admin/canned.)
 */
export async function openCannedManager({ api, toast, text, onChange }) {
  const list = h("ul", { class: "canned-manage", "aria-label": "Your canned responses" });
  const shortcut = h("input", { id: "canned-new-shortcut", maxlength: "40", autocomplete: "off", required: true });
  const error = h("p", { class: "form-error", role: "alert" });
  const save = h(
    "form",
    { class: "canned-save" },
    h("label", { for: "canned-new-shortcut", text: "Shortcut for the text in the composer" }),
    h("div", { class: "canned-save-row" }, shortcut, h("button", { type: "submit", class: "primary", text: "Save" })),
    error,
  );
  const dialog = h(
    "dialog",
    { class: "canned-dialog", "aria-labelledby": "canned-dialog-title" },
    h("h2", { id: "canned-dialog-title", text: "Your canned responses" }),
    h("p", { class: "hint", text: "Type / in the composer to use them, with the shared ones. Variables: {{customer.name}}, {{customer.email}}, {{agent.name}}, {{ticket.id}}." }),
    save,
    list,
    h("form", { method: "dialog" }, h("button", { type: "submit", class: "secondary", text: "Close" })),
  );

  async function reload() {
    const items = (await api("/canned-responses")).canned_responses.filter((item) => !item.shared);
    clear(list);
    if (!items.length) list.appendChild(h("li", { class: "muted", text: "None yet." }));
    for (const item of items) {
      const remove = async () => {
        try {
          await api(`/canned-responses/${encodeURIComponent(item.id)}`, { method: "DELETE" });
          onChange();
          await reload();
        } catch (err) {
          toast(`Could not delete it: ${err.message}`);
        }
      };
      list.appendChild(
        h(
          "li",
          {},
          h("code", { text: `/${item.shortcut}` }),
          h("span", { class: "canned-preview", text: item.body.slice(0, 100) }),
          h("button", { type: "button", class: "ghost", text: "Delete", "aria-label": `Delete /${item.shortcut}`, onclick: remove }),
        ),
      );
    }
  }

  save.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const body = text().trim();
    if (!body) {
      error.textContent = "Write the response in the composer first.";
      return;
    }
    try {
      const item = (await api("/canned-responses", { method: "POST", body: { shortcut: shortcut.value.trim(), body } })).canned_response;
      toast(`Saved as /${item.shortcut}.`);
      shortcut.value = "";
      onChange();
      await reload();
    } catch (err) {
      error.textContent = err.message;
    }
  });

  document.body.appendChild(dialog);
  dialog.addEventListener("close", () => dialog.remove());
  try {
    await reload();
  } catch (err) {
    toast(`Could not load your canned responses: ${err.message}`);
  }
  dialog.showModal();
  shortcut.focus();
}

// Labels in the agent console (docs/web.md, "Labels"): the catalogue (GET /labels, kept current by
// the inbox stream's inbox.labels_changed), the ticket's label control (PUT /tickets/{id}/labels)
// and the inbox filter. A chip shows the label's colour as a dot and its name as text.

import { clear, h } from "./dom.js";

export class LabelCatalogue {
  /** @param {(path: string) => Promise<any>} api */
  constructor(api) {
    this.api = api;
    this.labels = [];
    this.listeners = [];
  }

  async load() {
    this.set((await this.api("/labels")).labels);
  }

  set(labels) {
    this.labels = labels;
    for (const listener of this.listeners) listener();
  }

  onChange(listener) {
    this.listeners.push(listener);
  }

  byId(id) {
    return this.labels.find((label) => label.id === id) || null;
  }

  /** The label as it is now: a rename shows at once, even on a ticket's older copy. */
  current(label) {
    return this.byId(label.id) || label;
  }
}

export function labelChip(label, { onRemove } = {}) {
  const dot = h("span", { class: "label-dot", "aria-hidden": "true" });
  dot.style.setProperty("--label-color", label.color); // CSSOM: allowed by the strict CSP
  return h(
    "li",
    { class: "label-chip", dataset: { labelId: label.id } },
    dot,
    h("span", { class: "label-name", text: label.name }),
    onRemove
      ? h("button", { type: "button", class: "label-remove", "aria-label": `Remove label ${label.name}`, text: "×", onclick: onRemove })
      : null,
  );
}

/** The chips of an inbox row (no buttons: the row is a link). */
export function labelChips(ticket, catalogue) {
  const labels = ticket.labels || [];
  if (!labels.length) return null;
  return h("ul", { class: "label-chips", "aria-label": "Labels" }, labels.map((label) => labelChip(catalogue.current(label))));
}

/** The ticket pane's control: the ticket's chips (each removable) and a select to add one. */
export class TicketLabels {
  constructor({ catalogue, setLabels, toast }) {
    this.catalogue = catalogue;
    this.setLabels = setLabels; // (ids) => Promise<ticket>
    this.toast = toast;
    this.ticket = null;
    this.chips = h("ul", { class: "label-chips", "aria-label": "Labels of this conversation" });
    this.add = h("select", { id: "ctl-label-add", onchange: () => this.onAdd() });
    this.el = h(
      "div",
      { class: "control labels-control" },
      h("label", { for: "ctl-label-add", text: "Labels" }),
      h("div", { class: "labels-row" }, this.chips, this.add),
    );
    catalogue.onChange(() => this.render(this.ticket));
  }

  ids() {
    return (this.ticket?.labels || []).map((label) => label.id);
  }

  render(ticket) {
    this.ticket = ticket;
    clear(this.chips);
    clear(this.add);
    if (!ticket) return;
    for (const label of ticket.labels || []) {
      const shown = this.catalogue.current(label);
      this.chips.appendChild(labelChip(shown, { onRemove: () => this.change(this.ids().filter((id) => id !== label.id)) }));
    }
    const have = new Set(this.ids());
    this.add.appendChild(h("option", { value: "", text: "Add label…" }));
    for (const label of this.catalogue.labels) {
      if (!have.has(label.id)) this.add.appendChild(h("option", { value: label.id, text: label.name }));
    }
    this.add.disabled = this.add.options.length <= 1;
  }

  onAdd() {
    const id = this.add.value;
    if (id) this.change([...this.ids(), id]);
  }

  async change(ids) {
    try {
      this.render(await this.setLabels(ids));
    } catch (err) {
      this.toast(`Could not change the labels: ${err.message}`);
      this.render(this.ticket);
    }
  }
}

/** Fill the inbox filter's <select name="label"> from the catalogue, keeping the choice. */
export function renderLabelFilter(select, catalogue) {
  const chosen = select.value;
  clear(select);
  select.appendChild(h("option", { value: "", text: "Any" }));
  for (const label of catalogue.labels) select.appendChild(h("option", { value: label.id, text: label.name }));
  select.value = catalogue.byId(chosen) ? chosen : "";
}

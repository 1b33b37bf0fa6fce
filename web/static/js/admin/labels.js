// Admin › Labels (docs/web.md, "Labels"): create, rename, recolour, delete. Agents put labels on
// tickets in the console; every change here reaches open consoles at once (inbox.labels_changed).

import { adminForm, dataTable, errorLine, field, onSubmit, rowActions, rowButton } from "./ui.js";

export async function render(root, { api, h, clear, toast }) {
  const listBox = h("div");
  const act = rowActions(toast, () => reload());

  function swatch(color) {
    const dot = h("span", { class: "label-dot", "aria-hidden": "true" });
    dot.style.setProperty("--label-color", color); // CSSOM: allowed by the strict CSP
    return dot;
  }

  function editForm(label) {
    const name = h("input", { value: label.name, required: true, maxlength: "50", "aria-label": `New name for ${label.name}` });
    const color = h("input", { type: "color", value: label.color, "aria-label": `Colour of ${label.name}` });
    const form = h(
      "form",
      { class: "inline-form" },
      name,
      color,
      h("button", { type: "submit", class: "secondary", text: "Save", "aria-label": `Save ${label.name}` }),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = { name: name.value.trim(), color: color.value };
      act(`Saved ${body.name}.`, () => api("PATCH", `/labels/${encodeURIComponent(label.id)}`, body));
    });
    return form;
  }

  async function reload() {
    const { labels } = await api("GET", "/labels");
    clear(listBox);
    listBox.appendChild(
      dataTable({
        caption: "Labels",
        empty: "No labels yet.",
        rows: labels,
        columns: [
          { title: "Label", cell: (l) => h("span", { class: "label-chip" }, swatch(l.color), h("span", { text: l.name })) },
          { title: "Rename or recolour", cell: (l) => editForm(l) },
          {
            title: "Delete",
            cell: (l) =>
              rowButton("Delete", `Delete ${l.name}`, () => {
                if (!window.confirm(`Delete “${l.name}”? It is taken off every ticket.`)) return;
                act(`Deleted ${l.name}.`, () => api("DELETE", `/labels/${encodeURIComponent(l.id)}`));
              }),
          },
        ],
      }),
    );
  }

  const name = h("input", { name: "name", required: true, maxlength: "50", autocomplete: "off" });
  const color = h("input", { name: "color", type: "color", value: "#4f46e5" });
  const error = errorLine();
  const form = adminForm(
    h("h2", { id: "new-label-title", text: "New label" }),
    field("Name", name, "Up to 50 characters; unique regardless of case."),
    field("Colour", color),
    error.el,
    h("button", { type: "submit", class: "primary", text: "Create label" }),
  );
  onSubmit(form, error, async () => {
    await api("POST", "/labels", { name: name.value.trim(), color: color.value });
    form.reset();
    await reload();
  });

  root.append(listBox, form);
  await reload();
}

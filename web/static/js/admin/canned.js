// Admin › Canned responses (docs/web.md, "Canned responses"): the shared ones, offered to every
// agent when they type "/" in the composer. Agents keep personal ones in the console.

import { adminForm, dataTable, errorLine, field, onSubmit, rowActions, rowButton } from "./ui.js";

const VARIABLES = "Variables: {{customer.name}}, {{customer.email}}, {{agent.name}}, {{ticket.id}}.";

export async function render(root, { api, h, clear, toast }) {
  const listBox = h("div");
  const act = rowActions(toast, () => reload());

  function editForm(item) {
    const body = h("textarea", { rows: "2", maxlength: "5000", required: true, "aria-label": `Text of /${item.shortcut}` });
    body.value = item.body;
    const form = h(
      "form",
      { class: "inline-form" },
      body,
      h("button", { type: "submit", class: "secondary", text: "Save", "aria-label": `Save /${item.shortcut}` }),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      act(`Saved /${item.shortcut}.`, () => api("PATCH", `/canned-responses/${encodeURIComponent(item.id)}`, { body: body.value }));
    });
    return form;
  }

  async function reload() {
    const { canned_responses: items } = await api("GET", "/canned-responses");
    clear(listBox);
    listBox.appendChild(
      dataTable({
        caption: "Shared canned responses",
        empty: "No shared canned responses yet.",
        rows: items.filter((item) => item.shared),
        columns: [
          { title: "Shortcut", cell: (c) => h("code", { text: `/${c.shortcut}` }) },
          { title: "Text", cell: (c) => editForm(c) },
          {
            title: "Delete",
            cell: (c) =>
              rowButton("Delete", `Delete /${c.shortcut}`, () => {
                if (!window.confirm(`Delete /${c.shortcut} for every agent?`)) return;
                act(null, () => api("DELETE", `/canned-responses/${encodeURIComponent(c.id)}`));
              }),
          },
        ],
      }),
    );
  }

  const shortcut = h("input", { name: "shortcut", required: true, maxlength: "40", autocomplete: "off", pattern: "[A-Za-z0-9][A-Za-z0-9_\\-]*" });
  const body = h("textarea", { name: "body", rows: "4", required: true, maxlength: "5000" });
  const error = errorLine();
  const form = adminForm(
    h("h2", { id: "new-canned-title", text: "New shared response" }),
    field("Shortcut", shortcut, "Agents type / and this: letters, digits, - and _."),
    field("Text", body, VARIABLES),
    error.el,
    h("button", { type: "submit", class: "primary", text: "Create response" }),
  );
  onSubmit(form, error, async () => {
    await api("POST", "/canned-responses", { shortcut: shortcut.value.trim(), body: body.value, shared: true });
    form.reset();
    await reload();
  });

  root.append(listBox, form);
  await reload();
}

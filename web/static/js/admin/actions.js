// Admin › AI actions (docs/ai.md, "Acting"): the HTTP calls the AI may make during replies. Add,
// edit, enable/disable, delete. Header values are write-only: the list shows their names, and an
// edit replaces them only when the headers box is filled in.

import { adminForm, dataTable, errorLine, field, onSubmit, rowActions, rowButton, when } from "./ui.js";

const EXAMPLE_SCHEMA = JSON.stringify(
  { type: "object", properties: { order_id: { type: "string", description: "The order number" } }, required: ["order_id"] },
  null,
  2,
);

export async function render(root, { api, h, clear, toast }) {
  const listBox = h("div");
  let editing = null; // the action being edited, or null for a new one

  const act = rowActions(toast, () => reload());

  async function reload() {
    const { actions } = await api("GET", "/admin/actions");
    clear(listBox);
    listBox.appendChild(
      dataTable({
        caption: "AI actions",
        empty: "No actions yet: the AI can only answer from the knowledge base.",
        rows: actions,
        columns: [
          { title: "Name", cell: (a) => h("code", { text: a.name }) },
          { title: "Request", cell: (a) => h("code", { text: `${a.method} ${a.url_template}` }) },
          {
            title: "Kind",
            cell: (a) =>
              a.mutating
                ? h("span", { class: "badge off", text: a.customer_confirmation ? "Changes: customer or agent approves" : "Changes: agent approves" })
                : h("span", { class: "badge on", text: "Read-only" }),
          },
          { title: "Headers", cell: (a) => (a.header_names.length ? a.header_names.join(", ") : "—") },
          { title: "State", cell: (a) => (a.enabled ? "Enabled" : "Disabled") },
          { title: "Changed", cell: (a) => when(a.updated_at) },
          {
            title: "Actions",
            cell: (a) =>
              h(
                "div",
                { class: "row-actions" },
                rowButton("Edit", `Edit ${a.name}`, () => edit(a)),
                rowButton(a.enabled ? "Disable" : "Enable", `${a.enabled ? "Disable" : "Enable"} ${a.name}`, () =>
                  act(null, () => api("PATCH", `/admin/actions/${encodeURIComponent(a.id)}`, { enabled: !a.enabled })),
                ),
                rowButton(
                  "Delete",
                  `Delete ${a.name}`,
                  () => {
                    if (!window.confirm(`Delete the action ${a.name}? Its past calls stay in the tickets' logs.`)) return;
                    act("Action deleted.", () => api("DELETE", `/admin/actions/${encodeURIComponent(a.id)}`));
                  },
                  "ghost danger",
                ),
              ),
          },
        ],
      }),
    );
  }

  const name = h("input", { name: "name", required: true, maxlength: "64", pattern: "[A-Za-z0-9_\\-]+", placeholder: "get_order_status" });
  const description = h("textarea", { name: "description", required: true, rows: "2", maxlength: "2000" });
  const method = h("select", { name: "method" }, ["GET", "POST", "PUT", "PATCH", "DELETE"].map((m) => h("option", { value: m, text: m })));
  const url = h("input", { name: "url_template", required: true, placeholder: "https://shop.example/api/orders/{order_id}" });
  const label = h("input", { name: "label", maxlength: "200", placeholder: "Looking up order {order_id}…" });
  const parameters = h("textarea", { name: "parameters", rows: "8", class: "code", spellcheck: "false" });
  const headers = h("textarea", { name: "headers", rows: "3", class: "code", spellcheck: "false", placeholder: "Authorization: Bearer …" });
  const timeout = h("input", { name: "timeout_seconds", type: "number", min: "0.1", max: "60", step: "0.1", value: "5" });
  const mutating = h("input", { type: "checkbox", name: "mutating" });
  const customer = h("input", { type: "checkbox", name: "customer_confirmation" });
  const title = h("h2", { id: "action-form-title", text: "New action" });
  const submit = h("button", { type: "submit", class: "primary", text: "Add action" });
  const cancel = h("button", { type: "button", class: "secondary", text: "Cancel edit", hidden: true, onclick: () => edit(null) });
  const error = errorLine();
  parameters.value = EXAMPLE_SCHEMA;

  function edit(action) {
    editing = action;
    error.clear();
    title.textContent = action ? `Edit ${action.name}` : "New action";
    submit.textContent = action ? "Save" : "Add action";
    cancel.hidden = !action;
    name.value = action ? action.name : "";
    description.value = action ? action.description : "";
    method.value = action ? action.method : "GET";
    url.value = action ? action.url_template : "";
    label.value = action ? action.label : "";
    parameters.value = action ? JSON.stringify(action.parameters, null, 2) : EXAMPLE_SCHEMA;
    headers.value = "";
    headers.placeholder = action && action.header_names.length
      ? `Unchanged (${action.header_names.join(", ")}); type new lines to replace them all`
      : "Authorization: Bearer …";
    timeout.value = action ? String(action.timeout_seconds) : "5";
    mutating.checked = action ? action.mutating : false;
    customer.checked = action ? action.customer_confirmation : false;
    if (action) form.scrollIntoView({ block: "start" });
  }

  function readParameters() {
    try {
      return JSON.parse(parameters.value);
    } catch (err) {
      throw new Error(`Parameters: ${err.message}`);
    }
  }

  function parseHeaders(text) {
    const out = {};
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      const at = line.indexOf(":");
      if (at < 1) throw new Error(`A header line must be "Name: value": ${line.slice(0, 40)}`);
      out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    }
    return out;
  }

  const form = adminForm(
    title,
    field("Name", name, "What the model calls: letters, digits, _ and -."),
    field("Description for the model", description, "When to use it and what it returns."),
    field("Method", method),
    field("URL template", url, "{parameter} placeholders in the path or query are filled in URL-encoded. Only http(s); private addresses are refused unless the operator allows them."),
    field("Label shown while it runs", label, "The room reads it, e.g. Looking up order {order_id}…"),
    field("Parameters (JSON Schema)", parameters, "An object schema; the model's arguments are checked against it."),
    field("Headers", headers, "One per line, Name: value. Stored encrypted and never shown again."),
    field("Timeout (seconds)", timeout),
    h("label", { class: "check" }, mutating, " Changes something (a refund, a cancellation): an agent approves each call"),
    h("label", { class: "check" }, customer, " The customer may confirm it instead of an agent"),
    error.el,
    h("div", { class: "row-actions" }, submit, cancel),
  );
  onSubmit(form, error, async () => {
    const body = {
      name: name.value.trim(),
      description: description.value.trim(),
      method: method.value,
      url_template: url.value.trim(),
      label: label.value.trim(),
      parameters: readParameters(),
      timeout_seconds: Number(timeout.value),
      mutating: mutating.checked,
      customer_confirmation: mutating.checked && customer.checked,
    };
    if (headers.value.trim() || !editing) body.headers = parseHeaders(headers.value);
    if (editing) {
      await api("PATCH", `/admin/actions/${encodeURIComponent(editing.id)}`, body);
      toast("Action saved.");
    } else {
      await api("POST", "/admin/actions", body);
      toast("Action added.");
    }
    edit(null);
    await reload();
  });

  root.append(listBox, form);
  await reload();
}

// Admin › API keys (docs/integrations.md): list, create (the key is shown once), revoke.

import { adminForm, checkedValues, dataTable, errorLine, field, fillChecks, onSubmit, rowActions, rowButton, showOnce, when } from "./ui.js";

export async function render(root, { api, h, clear, toast }) {
  const listBox = h("div");
  const created = h("div", { class: "secret-once", hidden: true, role: "status" });
  const act = rowActions(toast, () => reload());

  async function reload() {
    const data = await api("GET", "/admin/api-keys");
    clear(listBox);
    listBox.appendChild(
      dataTable({
        caption: "API keys",
        empty: "No API keys yet.",
        rows: data.api_keys,
        columns: [
          { title: "Name", cell: (k) => k.name },
          { title: "Key", cell: (k) => h("code", { text: `${k.prefix}…` }) },
          { title: "Scopes", cell: (k) => k.scopes.join(", ") },
          { title: "Last used", cell: (k) => when(k.last_used_at) },
          { title: "Expires", cell: (k) => (k.expires_at ? when(k.expires_at) : "never") },
          {
            title: "Status",
            cell: (k) =>
              k.revoked_at
                ? h("span", { class: "badge off", text: "Revoked" })
                : rowButton("Revoke", `Revoke ${k.name}`, () => {
                    if (!window.confirm(`Revoke “${k.name}”? Clients using it stop working at once.`)) return;
                    act(`Revoked ${k.name}.`, () => api("POST", `/admin/api-keys/${encodeURIComponent(k.id)}/revoke`));
                  }),
          },
        ],
      }),
    );
    fillChecks(scopesBox, "scope", data.available_scopes);
  }

  const name = h("input", { name: "name", required: true, maxlength: "100", autocomplete: "off" });
  const expires = h("input", { name: "expires_at", type: "date" });
  const scopesBox = h("fieldset", { class: "checks" }, h("legend", { text: "Scopes" }));
  const error = errorLine();

  const form = adminForm(
    h("h2", { id: "new-key-title", text: "New API key" }),
    field("Name", name, "Who uses it, e.g. “CRM sync”. Messages it posts are authored by this name."),
    scopesBox,
    field("Expires (optional)", expires, "Leave empty for a key that does not expire."),
    error.el,
    h("button", { type: "submit", class: "primary", text: "Create key" }),
  );
  onSubmit(form, error, async () => {
    const body = { name: name.value.trim(), scopes: checkedValues(scopesBox) };
    // The end of the chosen day, in UTC.
    if (expires.value) body.expires_at = `${expires.value}T23:59:59+00:00`;
    const { api_key: key } = await api("POST", "/admin/api-keys", body);
    showOnce(created, `Copy the key for “${key.name}” now: it is not shown again.`, key.key);
    form.reset();
    await reload();
  });

  root.append(created, listBox, form);
  await reload();
}

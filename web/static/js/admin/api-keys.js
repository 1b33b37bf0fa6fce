// Admin › API keys (docs/integrations.md): list, create (the key is shown once), revoke.

import { dataTable, errorLine, field, when } from "./ui.js";

export async function render(root, { api, h, clear, toast }) {
  const listBox = h("div");
  const created = h("div", { class: "secret-once", hidden: true, role: "status" });
  let available = [];

  async function reload() {
    const data = await api("GET", "/admin/api-keys");
    available = data.available_scopes;
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
                : h("button", {
                    type: "button",
                    class: "secondary",
                    text: "Revoke",
                    "aria-label": `Revoke ${k.name}`,
                    onclick: async () => {
                      if (!window.confirm(`Revoke “${k.name}”? Clients using it stop working at once.`)) return;
                      try {
                        await api("POST", `/admin/api-keys/${encodeURIComponent(k.id)}/revoke`);
                        toast(`Revoked ${k.name}.`);
                        await reload();
                      } catch (err) {
                        toast(err.message);
                      }
                    },
                  }),
          },
        ],
      }),
    );
    renderScopes();
  }

  const name = h("input", { name: "name", required: true, maxlength: "100", autocomplete: "off" });
  const expires = h("input", { name: "expires_at", type: "date" });
  const scopesBox = h("fieldset", { class: "checks" }, h("legend", { text: "Scopes" }));
  const error = errorLine();

  function renderScopes() {
    if (scopesBox.querySelector("input")) return;
    for (const scope of available) {
      scopesBox.appendChild(h("label", {}, h("input", { type: "checkbox", name: "scope", value: scope }), ` ${scope}`));
    }
  }

  const form = h(
    "form",
    { class: "admin-form", "aria-labelledby": "new-key-title" },
    h("h2", { id: "new-key-title", text: "New API key" }),
    field("Name", name, "Who uses it, e.g. “CRM sync”. Messages it posts are authored by this name."),
    scopesBox,
    field("Expires (optional)", expires, "Leave empty for a key that does not expire."),
    error.el,
    h("button", { type: "submit", class: "primary", text: "Create key" }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.clear();
    const scopes = [...scopesBox.querySelectorAll("input:checked")].map((i) => i.value);
    const body = { name: name.value.trim(), scopes };
    // The end of the chosen day, in UTC.
    if (expires.value) body.expires_at = `${expires.value}T23:59:59+00:00`;
    try {
      const { api_key: key } = await api("POST", "/admin/api-keys", body);
      clear(created);
      created.append(
        h("p", { text: `Copy the key for “${key.name}” now: it is not shown again.` }),
        h("code", { class: "secret", text: key.key }),
      );
      created.hidden = false;
      form.reset();
      await reload();
    } catch (err) {
      error.show(err);
    }
  });

  root.append(created, listBox, form);
  await reload();
}

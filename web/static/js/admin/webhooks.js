// Admin › Webhooks (docs/integrations.md): endpoints (add, pause/resume, delete), the signing
// secret shown once, a test event, and each endpoint's delivery log with "send again".

import { dataTable, errorLine, field, when } from "./ui.js";

export async function render(root, { api, h, clear, toast }) {
  const listBox = h("div");
  const created = h("div", { class: "secret-once", hidden: true, role: "status" });
  const log = h("section", { class: "delivery-log", "aria-labelledby": "log-title", hidden: true });
  let available = [];

  async function act(label, fn) {
    try {
      await fn();
      if (label) toast(label);
      await reload();
    } catch (err) {
      toast(err.message);
    }
  }

  async function reload() {
    const data = await api("GET", "/admin/webhooks");
    available = data.available_event_types;
    clear(listBox);
    listBox.appendChild(
      dataTable({
        caption: "Webhook endpoints",
        empty: "No webhook endpoints yet.",
        rows: data.webhooks,
        columns: [
          { title: "URL", cell: (w) => h("code", { text: w.url }) },
          { title: "Events", cell: (w) => w.event_types.join(", ") + (w.include_internal ? " (with internal notes)" : "") },
          {
            title: "State",
            cell: (w) =>
              w.active
                ? h("span", { class: "badge on", text: "Active" })
                : h("span", { class: "badge off", text: w.disabled_reason ? `Disabled: ${w.disabled_reason}` : "Paused" }),
          },
          {
            title: "Actions",
            cell: (w) =>
              h(
                "div",
                { class: "row-actions" },
                h("button", {
                  type: "button",
                  class: "secondary",
                  text: "Deliveries",
                  "aria-label": `Deliveries to ${w.url}`,
                  onclick: () => showLog(w),
                }),
                h("button", {
                  type: "button",
                  class: "secondary",
                  text: "Send test event",
                  "aria-label": `Send test event to ${w.url}`,
                  onclick: () =>
                    act("Test event queued.", async () => {
                      await api("POST", `/admin/webhooks/${encodeURIComponent(w.id)}/test`);
                      if (!log.hidden && log.dataset.endpoint === w.id) await showLog(w);
                    }),
                }),
                h("button", {
                  type: "button",
                  class: "secondary",
                  text: w.active ? "Pause" : "Resume",
                  "aria-label": `${w.active ? "Pause" : "Resume"} ${w.url}`,
                  onclick: () =>
                    act(null, () => api("PATCH", `/admin/webhooks/${encodeURIComponent(w.id)}`, { active: !w.active })),
                }),
                h("button", {
                  type: "button",
                  class: "ghost danger",
                  text: "Delete",
                  "aria-label": `Delete ${w.url}`,
                  onclick: () => {
                    if (!window.confirm(`Delete the endpoint ${w.url}? Pending deliveries are dropped.`)) return;
                    act("Endpoint deleted.", async () => {
                      await api("DELETE", `/admin/webhooks/${encodeURIComponent(w.id)}`);
                      if (log.dataset.endpoint === w.id) log.hidden = true;
                    });
                  },
                }),
              ),
          },
        ],
      }),
    );
    renderTypes();
  }

  async function showLog(endpoint) {
    const page = await api("GET", `/admin/webhooks/${encodeURIComponent(endpoint.id)}/deliveries?limit=50`);
    clear(log);
    log.dataset.endpoint = endpoint.id;
    log.append(
      h("h2", { id: "log-title", text: `Deliveries to ${endpoint.url}` }),
      dataTable({
        caption: "Deliveries",
        empty: "No deliveries yet.",
        rows: page.deliveries,
        columns: [
          { title: "Event", cell: (d) => (d.test ? "test" : d.event_id) },
          { title: "Status", cell: (d) => h("span", { class: `badge ${d.status}`, text: d.status }) },
          { title: "Response", cell: (d) => (d.response_status ? String(d.response_status) : d.error || "—") },
          { title: "Attempts", cell: (d) => String(d.attempts) },
          { title: "Last attempt", cell: (d) => when(d.last_attempt_at) },
          {
            title: "",
            cell: (d) =>
              h("button", {
                type: "button",
                class: "secondary",
                text: "Send again",
                "aria-label": `Send again (delivery ${d.id})`,
                onclick: () =>
                  act("Queued again.", async () => {
                    await api("POST", `/admin/webhooks/${encodeURIComponent(endpoint.id)}/deliveries/${d.id}/resend`);
                    await showLog(endpoint);
                  }),
              }),
          },
        ],
      }),
    );
    log.hidden = false;
  }

  const url = h("input", { name: "url", type: "url", required: true, placeholder: "https://example.com/hooks/support" });
  const description = h("input", { name: "description", maxlength: "500" });
  const internal = h("input", { type: "checkbox", name: "include_internal" });
  const typesBox = h("fieldset", { class: "checks" }, h("legend", { text: "Events" }));
  const error = errorLine();

  function renderTypes() {
    if (typesBox.querySelector("input")) return;
    for (const type of available) {
      typesBox.appendChild(h("label", {}, h("input", { type: "checkbox", name: "event_type", value: type }), ` ${type}`));
    }
  }

  const form = h(
    "form",
    { class: "admin-form", "aria-labelledby": "new-hook-title" },
    h("h2", { id: "new-hook-title", text: "New endpoint" }),
    field("URL", url, "Only http(s). Private and loopback addresses are refused unless the operator allows them."),
    typesBox,
    h("label", { class: "check" }, internal, " Include internal notes in message.created"),
    field("Description (optional)", description),
    error.el,
    h("button", { type: "submit", class: "primary", text: "Add endpoint" }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.clear();
    const body = {
      url: url.value.trim(),
      event_types: [...typesBox.querySelectorAll("input:checked")].map((i) => i.value),
      include_internal: internal.checked,
    };
    if (description.value.trim()) body.description = description.value.trim();
    try {
      const { webhook } = await api("POST", "/admin/webhooks", body);
      clear(created);
      created.append(
        h("p", { text: `Signing secret for ${webhook.url}: copy it now, it is not shown again.` }),
        h("code", { class: "secret", text: webhook.secret }),
      );
      created.hidden = false;
      form.reset();
      await reload();
    } catch (err) {
      error.show(err);
    }
  });

  root.append(created, listBox, log, form);
  await reload();
}

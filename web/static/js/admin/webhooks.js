// Admin › Webhooks (docs/integrations.md): endpoints (add, pause/resume, delete), the signing
// secret shown once, a test event, and each endpoint's delivery log with "send again".

import { adminForm, checkedValues, dataTable, errorLine, field, fillChecks, onSubmit, rowActions, rowButton, showOnce, when } from "./ui.js";

export async function render(root, { api, h, clear, toast }) {
  const listBox = h("div");
  const created = h("div", { class: "secret-once", hidden: true, role: "status" });
  const log = h("section", { class: "delivery-log", "aria-labelledby": "log-title", hidden: true });

  const act = rowActions(toast, () => reload());

  async function reload() {
    const data = await api("GET", "/admin/webhooks");
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
                rowButton("Deliveries", `Deliveries to ${w.url}`, () => showLog(w)),
                rowButton("Send test event", `Send test event to ${w.url}`, () =>
                  act("Test event queued.", async () => {
                    await api("POST", `/admin/webhooks/${encodeURIComponent(w.id)}/test`);
                    if (!log.hidden && log.dataset.endpoint === w.id) await showLog(w);
                  }),
                ),
                rowButton(w.active ? "Pause" : "Resume", `${w.active ? "Pause" : "Resume"} ${w.url}`, () =>
                  act(null, () => api("PATCH", `/admin/webhooks/${encodeURIComponent(w.id)}`, { active: !w.active })),
                ),
                rowButton(
                  "Delete",
                  `Delete ${w.url}`,
                  () => {
                    if (!window.confirm(`Delete the endpoint ${w.url}? Pending deliveries are dropped.`)) return;
                    act("Endpoint deleted.", async () => {
                      await api("DELETE", `/admin/webhooks/${encodeURIComponent(w.id)}`);
                      if (log.dataset.endpoint === w.id) log.hidden = true;
                    });
                  },
                  "ghost danger",
                ),
              ),
          },
        ],
      }),
    );
    fillChecks(typesBox, "event_type", data.available_event_types);
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
              rowButton("Send again", `Send again (delivery ${d.id})`, () =>
                act("Queued again.", async () => {
                  await api("POST", `/admin/webhooks/${encodeURIComponent(endpoint.id)}/deliveries/${d.id}/resend`);
                  await showLog(endpoint);
                }),
              ),
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

  const form = adminForm(
    h("h2", { id: "new-hook-title", text: "New endpoint" }),
    field("URL", url, "Only http(s). Private and loopback addresses are refused unless the operator allows them."),
    typesBox,
    h("label", { class: "check" }, internal, " Include internal notes in message.created"),
    field("Description (optional)", description),
    error.el,
    h("button", { type: "submit", class: "primary", text: "Add endpoint" }),
  );
  onSubmit(form, error, async () => {
    const body = { url: url.value.trim(), event_types: checkedValues(typesBox), include_internal: internal.checked };
    if (description.value.trim()) body.description = description.value.trim();
    const { webhook } = await api("POST", "/admin/webhooks", body);
    showOnce(created, `Signing secret for ${webhook.url}: copy it now, it is not shown again.`, webhook.secret);
    form.reset();
    await reload();
  });

  root.append(created, listBox, log, form);
  await reload();
}

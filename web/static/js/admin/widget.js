// Admin › Widget (docs/web.md, "Widget settings"): colour, texts, business hours with a time zone,
// away message, languages and per-language strings. Saved with PUT /admin/widget-settings; every
// instance serves the change at once. A field left empty does not override the embed script's.

import { adminForm, checkedValues, errorLine, field, onSubmit, when } from "./ui.js";

const DAYS = [
  ["mon", "Monday"],
  ["tue", "Tuesday"],
  ["wed", "Wednesday"],
  ["thu", "Thursday"],
  ["fri", "Friday"],
  ["sat", "Saturday"],
  ["sun", "Sunday"],
];
const LOCALES = [
  ["en", "English"],
  ["fr", "French"],
  ["de", "German"],
  ["es", "Spanish"],
];
const CAPTURE = [
  ["away", "When away (outside hours, or no agent online)"],
  ["always", "Always"],
  ["off", "Never"],
];

export async function render(root, { api, h, clear, toast }) {
  let current = await api("GET", "/admin/widget-settings");
  const s = current.settings;

  const text = (name, value, attrs = {}) => h("input", { name, value: value || "", autocomplete: "off", ...attrs });
  const color = text("color", s.color, { placeholder: "#4f46e5", pattern: "#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})" });
  const picker = h("input", { type: "color", "aria-label": "Pick the accent colour", value: s.color && s.color.length === 7 ? s.color : "#4f46e5" });
  picker.addEventListener("input", () => (color.value = picker.value));
  const title = text("title", s.title, { maxlength: "100" });
  const greeting = text("greeting", s.greeting, { maxlength: "500" });
  const expected = text("expected_reply", s.expected_reply, { maxlength: "200" });
  const awayMessage = h("textarea", { name: "away_message", rows: "2", maxlength: "500" });
  awayMessage.value = s.away_message || "";
  const capture = h("select", { name: "email_capture" }, CAPTURE.map(([v, label]) => h("option", { value: v, text: label, selected: s.email_capture === v })));
  const defaultLocale = h(
    "select",
    { name: "default_locale" },
    h("option", { value: "", text: "The visitor's browser language" }),
    LOCALES.map(([v, label]) => h("option", { value: v, text: label, selected: s.default_locale === v })),
  );
  const languages = h(
    "fieldset",
    { class: "checks" },
    h("legend", { text: "Languages offered (none ticked: all)" }),
    LOCALES.map(([v, label]) =>
      h("label", {}, h("input", { type: "checkbox", name: "languages", value: v, checked: Boolean(s.languages && s.languages.includes(v)) }), ` ${label}`),
    ),
  );
  const strings = h("textarea", { name: "strings", rows: "4", spellcheck: "false", class: "mono" });
  strings.value = Object.keys(s.strings || {}).length ? JSON.stringify(s.strings, null, 2) : "";

  // Business hours: on/off, a time zone, and intervals per day.
  const hours = s.business_hours;
  const hoursOn = h("input", { type: "checkbox", id: "hours-on", checked: Boolean(hours) });
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const timezone = text("timezone", hours ? hours.timezone : Intl.DateTimeFormat().resolvedOptions().timeZone, { list: "zones" });
  const zoneList = h("datalist", { id: "zones" }, zones.map((z) => h("option", { value: z })));
  const schedule = h("div", { class: "schedule" });

  function intervalRow(day, open, close) {
    const row = h(
      "div",
      { class: "interval", dataset: { day } },
      h("input", { type: "time", class: "open", value: open, "aria-label": `${day} opens` }),
      " – ",
      h("input", { type: "time", class: "close", value: close === "24:00" ? "23:59" : close, "aria-label": `${day} closes` }),
      " ",
      h("button", { type: "button", class: "secondary", text: "Remove", onclick: () => row.remove() }),
    );
    return row;
  }

  for (const [day, label] of DAYS) {
    const box = h("div", { class: "day-intervals" });
    for (const item of hours ? hours.schedule.filter((i) => i.day === day) : []) box.appendChild(intervalRow(day, item.open, item.close));
    schedule.appendChild(
      h(
        "div",
        { class: "day" },
        h("span", { class: "day-name", text: label }),
        box,
        h("button", { type: "button", class: "secondary", text: "Add hours", "aria-label": `Add hours on ${label}`, onclick: () => box.appendChild(intervalRow(day, "09:00", "17:00")) }),
      ),
    );
  }
  const hoursBox = h("fieldset", { class: "hours" }, h("legend", { text: "Business hours" }), h("label", {}, hoursOn, " Use business hours (off: always open)"), field("Time zone (IANA, e.g. Europe/Paris)", timezone), zoneList, schedule);

  const meta = h("p", { class: "muted" });
  function renderMeta() {
    clear(meta);
    meta.append(`Version ${current.version}`, current.updated_at ? " · saved " : "", current.updated_at ? when(current.updated_at) : "");
  }
  renderMeta();

  const error = errorLine();
  const form = adminForm(
    h("h2", { id: "widget-title", text: "Widget settings" }),
    meta,
    h("div", { class: "field" }, h("label", { for: "widget-color", text: "Accent colour" }), h("div", { class: "row" }, color, picker), h("p", { class: "hint", text: "Text on it is chosen for contrast automatically." })),
    field("Title", title),
    field("Greeting", greeting, "Shown at the top of a new conversation."),
    field("Expected reply", expected, "E.g. “We usually reply in a few minutes”, shown until a person joins."),
    field("Away message", awayMessage, "Shown outside business hours or when no agent is online."),
    field("Ask visitors for their email", capture, "Only when the server can send email (SMTP_URL)."),
    hoursBox,
    field("Default language", defaultLocale),
    languages,
    field("Strings per language (JSON)", strings, 'E.g. {"fr": {"greeting": "Bonjour !"}}; names as in the widget.'),
    error.el,
    h("button", { type: "submit", class: "primary", text: "Save" }),
  );
  color.id = "widget-color";

  function readStrings() {
    try {
      return strings.value.trim() ? JSON.parse(strings.value) : {};
    } catch (err) {
      throw new Error(`Strings: not valid JSON (${err.message})`);
    }
  }

  // The server's message names every bad field (colour, time zone, overlapping hours…).
  onSubmit(form, error, async () => {
    const parsedStrings = readStrings();
    const chosen = checkedValues(languages);
    const body = {
      color: color.value.trim() || null,
      title: title.value.trim() || null,
      greeting: greeting.value.trim() || null,
      expected_reply: expected.value.trim() || null,
      away_message: awayMessage.value.trim() || null,
      email_capture: capture.value,
      default_locale: defaultLocale.value || null,
      languages: chosen.length ? chosen : null,
      strings: parsedStrings,
      business_hours: hoursOn.checked
        ? {
            timezone: timezone.value.trim(),
            schedule: [...schedule.querySelectorAll(".interval")].map((row) => ({
              day: row.dataset.day,
              open: row.querySelector(".open").value,
              close: row.querySelector(".close").value === "23:59" ? "24:00" : row.querySelector(".close").value,
            })),
          }
        : null,
    };
    current = await api("PUT", "/admin/widget-settings", body);
    renderMeta();
    toast("Widget settings saved; every instance uses them now.");
  });

  clear(root);
  root.appendChild(form);
}

// The customer panel of the open ticket (GET /tickets/{id}/customer): who wrote, from which page,
// with which browser and language, their local time, and their other tickets, linked. A <details>
// under the ticket's header, so it takes no room until opened (its state is remembered).
// URLs are shown as text, and are links only when the server and the browser agree they are http(s).

import { clear, formatTime, h } from "./dom.js";

const OPEN_KEY = "console.customerPanel.open";

function webUrl(url, serverSaysWeb) {
  if (!url || !serverSaysWeb) return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch (err) {
    return null;
  }
}

function urlValue(url, isWeb) {
  const href = webUrl(url, isWeb);
  if (!href) return h("span", { class: "panel-url", text: url });
  return h("a", { class: "panel-url", href, target: "_blank", rel: "noopener noreferrer nofollow", text: url });
}

/** "14:05 (Tue)" in `timeZone`, or null when the browser does not know the zone. */
export function localTime(timeZone, now = new Date()) {
  if (!timeZone) return null;
  try {
    return new Intl.DateTimeFormat(undefined, { timeZone, hour: "2-digit", minute: "2-digit", weekday: "short" }).format(now);
  } catch (err) {
    return null;
  }
}

function languageName(tag) {
  try {
    const name = new Intl.DisplayNames(undefined, { type: "language" }).of(tag);
    return name && name !== tag ? `${name} (${tag})` : tag;
  } catch (err) {
    return tag;
  }
}

export class CustomerPanel {
  /**
   * @param {object} options
   * @param {(path: string) => Promise<any>} options.api  GET with the console's token
   * @param {(ticketId: string) => void} options.openTicket
   */
  constructor({ api, openTicket }) {
    this.api = api;
    this.openTicket = openTicket;
    this.summary = h("summary", { class: "panel-summary" }, h("span", { text: "Customer" }));
    this.body = h("div", { class: "panel-body" });
    this.element = h("details", { class: "customer-panel", "aria-label": "Customer details" }, this.summary, this.body);
    // Closed until the agent opens it (then as they left it): the conversation needs the height,
    // with the copilot's panel open too.
    if (localStorage.getItem(OPEN_KEY) === "open") this.element.open = true;
    this.element.addEventListener("toggle", () => localStorage.setItem(OPEN_KEY, this.element.open ? "open" : "closed"));
    this.loaded = null;
  }

  async load(ticketId) {
    this.loaded = ticketId;
    let data;
    try {
      data = await this.api(`/tickets/${encodeURIComponent(ticketId)}/customer`);
    } catch (err) {
      if (this.loaded === ticketId) this.renderProblem(err.message);
      return;
    }
    if (this.loaded === ticketId) this.render(data);
  }

  renderProblem(message) {
    clear(this.body);
    this.body.appendChild(h("p", { class: "panel-problem", text: `Could not load the customer: ${message}` }));
  }

  render(data) {
    const { customer, context } = data;
    const name = (customer && (customer.name || customer.email)) || "Visitor";
    const time = context && localTime(context.time_zone);
    clear(this.summary);
    this.summary.appendChild(h("span", { class: "panel-name", text: name }));
    if (context && context.browser) this.summary.appendChild(h("span", { class: "panel-hint", text: context.browser }));
    if (time) this.summary.appendChild(h("span", { class: "panel-hint", text: `Local time ${time}` }));
    const rows = [];
    const item = (label, value) => {
      if (value === null || value === undefined || value === "") return;
      rows.push(h("dt", { text: label }), h("dd", {}, value));
    };
    if (customer) {
      item("Name", customer.name || "Visitor");
      item("Email", customer.email);
      item("User id", customer.external_id ? h("code", { text: customer.external_id }) : customer.anonymous ? "Anonymous visitor" : null);
    }
    if (context) {
      item("Page", context.page_url ? urlValue(context.page_url, context.page_url_is_web) : null);
      item("Came from", context.referrer ? urlValue(context.referrer, context.referrer_is_web) : null);
      item("Browser", context.browser || context.user_agent);
      item("Language", context.language ? languageName(context.language) : null);
      item("Local time", time ? `${time} (${context.time_zone})` : context.time_zone);
    }
    clear(this.body);
    this.body.appendChild(h("dl", { class: "panel-facts" }, rows));
    const others = data.other_tickets || [];
    const title = data.other_total > others.length ? `Other tickets (${others.length} of ${data.other_total})` : `Other tickets (${others.length})`;
    this.body.appendChild(h("h3", { class: "panel-title", text: title }));
    if (!others.length) {
      this.body.appendChild(h("p", { class: "panel-none", text: "None." }));
      return;
    }
    this.body.appendChild(
      h(
        "ul",
        { class: "panel-tickets" },
        others.map((t) =>
          h(
            "li",
            {},
            h("a", {
              href: `/console/tickets/${t.id}`,
              text: t.subject,
              onclick: (event) => {
                if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
                event.preventDefault();
                this.openTicket(t.id);
              },
            }),
            " ",
            h("span", { class: `badge status-${t.status}`, text: t.status }),
            " ",
            h("time", { datetime: t.created_at, text: formatTime(t.created_at) }),
          ),
        ),
      ),
    );
  }
}

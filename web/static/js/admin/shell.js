// The admin pages' frame: loads the section module named by the page (web/static/js/admin/<slug>.js)
// and calls its render(root, ctx). A section builds its DOM with h() and talks to /admin/* REST.

import { clear, h } from "../dom.js";
import { consoleApi } from "../console-api.js";

const main = document.getElementById("admin-main");
const root = document.getElementById("admin-root");
const toastEl = document.getElementById("toast");
const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
const { api } = consoleApi(csrfToken);

let toastTimer = null;
function toast(message) {
  toastEl.textContent = message;
  toastEl.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (toastEl.hidden = true), 6000);
}

const ctx = { api, me: JSON.parse(main.dataset.me), toast, h, clear };

async function start() {
  try {
    const section = await import(main.dataset.script);
    clear(root);
    await section.render(root, ctx);
  } catch (err) {
    clear(root);
    root.appendChild(h("p", { class: "error", role: "alert", text: `Could not load this page: ${err.message}` }));
  }
}

start();

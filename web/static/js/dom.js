// Building DOM safely: every piece of text goes in through textContent or a text node, never
// through innerHTML, so a message like <img src=x onerror=...> is shown as the characters it is.

/**
 * h("li", {class: "msg", "aria-label": "…", onclick: fn}, "text", childNode, null)
 * Attributes: `class`, `text` (textContent), `dataset` (object), on* (event listeners),
 * anything else through setAttribute (true = empty attribute, false/null/undefined = absent).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = String(value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function newClientId() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function formatTime(iso, locale) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const now = new Date();
  const sameDay = date.toDateString() === now.toDateString();
  const options = sameDay ? { hour: "2-digit", minute: "2-digit" } : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
  try {
    return date.toLocaleString(locale || undefined, options);
  } catch (err) {
    return date.toLocaleString(undefined, options);
  }
}

/** "{name} is typing" with {placeholders} filled from `values` (plain text in, plain text out). */
export function fill(template, values) {
  return String(template).replace(/\{(\w+)\}/g, (match, key) => (key in values ? String(values[key]) : match));
}

/** Keep a scrolled-to-bottom list at the bottom when content is added. */
export function stickToBottom(list, mutate) {
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  mutate();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

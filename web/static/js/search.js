// Inbox search: the search box (debounced, GET /console/api/inbox?q=), each result's match snippet
// with its highlighted words, and, once a result is opened, the matched message scrolled into view
// and highlighted. Highlights are <mark> elements around text nodes: no markup from data is parsed.

import { h } from "./dom.js";

const DEBOUNCE_MS = 250;
const FIELD_LABELS = { subject: "Subject", description: "Description", customer: "Customer" };

/** Calls onSearch(q) when what is typed in `input` settles (Enter: at once). */
export function attachSearchBox(input, onSearch) {
  let timer = null;
  let last = input.value.trim();
  const fire = () => {
    clearTimeout(timer);
    const q = input.value.trim();
    if (q === last) return;
    last = q;
    onSearch(q);
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(fire, DEBOUNCE_MS);
  });
  input.form?.addEventListener("submit", (event) => {
    event.preventDefault();
    fire();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && input.value) {
      event.preventDefault();
      event.stopPropagation();
      input.value = "";
      fire();
    }
  });
}

/**
 * `text` with the [start, end) ranges (Unicode code points, as the API gives them) wrapped in <mark>.
 * @returns {Node[]}
 */
export function highlighted(text, ranges) {
  const chars = Array.from(text);
  const nodes = [];
  let at = 0;
  for (const [start, end] of [...(ranges || [])].sort((a, b) => a[0] - b[0])) {
    if (start < at || end <= start) continue; // overlapping or empty: keep the first
    if (start > at) nodes.push(document.createTextNode(chars.slice(at, start).join("")));
    nodes.push(h("mark", { text: chars.slice(start, end).join("") }));
    at = end;
  }
  if (at < chars.length) nodes.push(document.createTextNode(chars.slice(at).join("")));
  return nodes;
}

/** The line under an inbox row that says why it was found. */
export function matchLine(match) {
  if (!match) return null;
  const label = match.field === "message" ? (match.visibility === "internal" ? "Note" : null) : FIELD_LABELS[match.field];
  return h(
    "div",
    { class: `match match-${match.field}` },
    label ? h("span", { class: "match-field", text: `${label}: ` }) : null,
    highlighted(match.snippet, match.highlights),
  );
}

function termPattern(terms) {
  const escaped = (terms || []).filter(Boolean).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  if (!escaped.length) return null;
  escaped.sort((a, b) => b.length - a.length);
  // A term starts a word (as the server matches), in any case.
  return new RegExp(`(?<![\\p{L}\\p{N}])(?:${escaped.join("|")})`, "giu");
}

/** Wrap every occurrence of `terms` in the text nodes under `root` in <mark class="search-term">. */
export function markTerms(root, terms) {
  const pattern = termPattern(terms);
  if (!pattern) return 0;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  let count = 0;
  for (const node of nodes) {
    const text = node.nodeValue;
    pattern.lastIndex = 0;
    const hits = Array.from(text.matchAll(pattern));
    if (!hits.length) continue;
    const parts = [];
    let at = 0;
    for (const hit of hits) {
      if (hit.index > at) parts.push(document.createTextNode(text.slice(at, hit.index)));
      parts.push(h("mark", { class: "search-term", text: hit[0] }));
      at = hit.index + hit[0].length;
      count += 1;
    }
    if (at < text.length) parts.push(document.createTextNode(text.slice(at)));
    node.replaceWith(...parts);
  }
  return count;
}

/**
 * Scroll the thread to the matched message and highlight it, loading older pages while it is not
 * drawn yet (at most `maxPages`). Returns the message's element, or null.
 * @param {HTMLOListElement} list  the thread
 * @param {{seq: number}} match
 * @param {string[]} terms
 * @param {() => Promise<boolean>} loadOlder  resolves false when there is nothing older
 */
export async function revealMatch(list, match, terms, loadOlder, maxPages = 20) {
  if (!match || match.field !== "message") return null;
  const find = () => list.querySelector(`li[data-seq="${Number(match.seq)}"]`);
  let row = find();
  for (let page = 0; !row && page < maxPages; page += 1) {
    if (!(await loadOlder())) break;
    row = find();
  }
  if (!row) return null;
  for (const old of list.querySelectorAll(".search-hit")) old.classList.remove("search-hit");
  row.classList.add("search-hit");
  markTerms(row.querySelector(".bubble") || row, terms);
  row.setAttribute("tabindex", "-1");
  row.scrollIntoView({ block: "center" });
  row.focus({ preventScroll: true });
  return row;
}

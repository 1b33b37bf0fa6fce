// Message text as Markdown, shared by the widget and the console: paragraphs, emphasis, lists,
// inline code and code blocks, links and bare URLs, through the vendored markdown-it
// (web/static/vendor/markdown-it, loaded as a classic script before the modules).
//
// Safety, in layers: markdown-it runs with raw HTML off (a message's "<img onerror=…>" is
// escaped text); only http(s) and mailto links become links (validateLink), so "javascript:" and
// "data:" stay text; images are off (a message cannot make the visitor's browser fetch anything);
// and the HTML it produces is parsed in an inert <template> and copied element by element through
// an allow-list before it reaches the page, so even a bug in the library cannot add a script,
// an event handler or a style.

const SAFE_LINK = /^(https?:|mailto:)/i;
// Elements markdown-it produces for the rules we keep; anything else is dropped, keeping its text.
const ALLOWED = new Set([
  "P", "BR", "EM", "STRONG", "S", "CODE", "PRE", "UL", "OL", "LI", "A", "BLOCKQUOTE", "HR",
  "TABLE", "THEAD", "TBODY", "TR", "TH", "TD",
]);
const HEADINGS = new Set(["H1", "H2", "H3", "H4", "H5", "H6"]);

let parser = null;

function markdown() {
  if (parser !== null) return parser;
  const factory = globalThis.markdownit;
  if (typeof factory !== "function") {
    parser = false; // the library did not load: plain text still works
    return parser;
  }
  // breaks: a single newline in a chat message is a line break, as people type them.
  const md = factory({ html: false, linkify: true, breaks: true, typographer: false });
  md.disable(["image"]);
  md.validateLink = (url) => SAFE_LINK.test(String(url).trim());
  parser = md;
  return parser;
}

/** True when `href` may be put on a link (http, https, mailto). */
export function safeHref(href) {
  try {
    const url = new URL(String(href), window.location.href);
    return url.protocol === "http:" || url.protocol === "https:" || url.protocol === "mailto:";
  } catch (err) {
    return false;
  }
}

/** Copy allowed nodes of `source` into `target` (a fresh element of this document). */
function copySafe(source, target, inCode = false) {
  for (const node of source.childNodes) {
    if (node.nodeType === Node.TEXT_NODE) {
      // markdown-it puts a newline after each block: layout ignores it, but the bubble's text
      // (copy and paste, screen readers) should be the message's, not the HTML's.
      if (!inCode && /^\n+$/.test(node.nodeValue)) continue;
      target.appendChild(document.createTextNode(node.nodeValue));
      continue;
    }
    if (node.nodeType !== Node.ELEMENT_NODE) continue;
    const tag = node.tagName;
    let el;
    if (HEADINGS.has(tag)) {
      // A heading inside a chat bubble would break the page's outline: a strong paragraph.
      el = document.createElement("p");
      const strong = document.createElement("strong");
      copySafe(node, strong, inCode);
      el.appendChild(strong);
      target.appendChild(el);
      continue;
    }
    if (!ALLOWED.has(tag)) {
      copySafe(node, target, inCode);
      continue;
    }
    el = document.createElement(tag);
    if (tag === "A") {
      const href = node.getAttribute("href") || "";
      if (!SAFE_LINK.test(href.trim()) || !safeHref(href)) {
        copySafe(node, target, inCode); // not a link we allow: its text only
        continue;
      }
      el.setAttribute("href", href);
      el.setAttribute("target", "_blank");
      el.setAttribute("rel", "noopener noreferrer");
    } else if (tag === "OL" && /^\d{1,6}$/.test(node.getAttribute("start") || "")) {
      el.setAttribute("start", node.getAttribute("start"));
    }
    copySafe(node, el, inCode || tag === "PRE" || tag === "CODE");
    target.appendChild(el);
  }
}

/** `text` as Markdown, in a DocumentFragment safe to insert. */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  const md = markdown();
  const source = String(text ?? "");
  if (!md) {
    fragment.appendChild(document.createTextNode(source));
    return fragment;
  }
  const template = document.createElement("template");
  // Inert: nothing in a <template>'s content runs or loads, and markdown-it escaped raw HTML.
  template.innerHTML = md.render(source);
  copySafe(template.content, fragment);
  return fragment;
}

/** Fill `bubble` with `text` rendered as Markdown (replacing what was there). */
export function fillBubble(bubble, text) {
  bubble.replaceChildren(renderMarkdown(text));
  bubble.classList.add("md");
}

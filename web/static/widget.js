/*! chatserver widget loader — add to a page with:
 *   <script src="https://CHAT-SERVER/widget.js" data-title="Support" data-color="#4f46e5" async></script>
 * Options come from data-* attributes and/or a settings object defined before the script:
 *   window.ChatserverWidget = {title, color, position: "right"|"left", greeting, locale, expectedReply,
 *                              strings: {...}, user: {id, name, email, signature}}
 * See docs/web.md. The chat itself runs in a frame from the chat server; this script only draws the
 * launcher bubble (in a shadow root, so the page's CSS cannot restyle it) and opens the frame.
 */
(function () {
  "use strict";
  if (window.__chatserverWidget) return; // the snippet was pasted twice
  var script = document.currentScript;
  if (!script || !script.src) return;
  var serverOrigin = new URL(script.src, window.location.href).origin;
  var settings = window.ChatserverWidget && typeof window.ChatserverWidget === "object" ? window.ChatserverWidget : {};
  var data = script.dataset;

  function pick(name, fallback) {
    if (typeof settings[name] === "string" && settings[name]) return settings[name];
    if (typeof data[name] === "string" && data[name]) return data[name];
    return fallback;
  }

  var options = {
    title: pick("title", ""),
    color: /^#[0-9a-fA-F]{3,8}$/.test(pick("color", "")) ? pick("color", "") : "#4f46e5",
    position: pick("position", "right") === "left" ? "left" : "right",
    greeting: pick("greeting", undefined),
    expectedReply: pick("expectedReply", undefined),
    locale: pick("locale", document.documentElement.lang || navigator.language || "en"),
    strings: settings.strings && typeof settings.strings === "object" ? settings.strings : undefined,
    user: null,
  };
  var user = settings.user && typeof settings.user === "object" ? settings.user : null;
  if (!user && data.userId) {
    user = { id: data.userId, name: data.userName, email: data.userEmail, signature: data.userSignature };
  }
  if (user && user.id && user.signature) {
    options.user = {
      id: String(user.id),
      name: user.name ? String(user.name) : "",
      email: user.email ? String(user.email) : "",
      signature: String(user.signature),
    };
  }

  var CSS =
    ":host{all:initial}" +
    ".launcher{position:fixed;bottom:20px;width:56px;height:56px;border:0;border-radius:50%;cursor:pointer;" +
    "display:flex;align-items:center;justify-content:center;color:#fff;box-shadow:0 6px 20px rgba(0,0,0,.25);" +
    "z-index:2147483646;padding:0;margin:0;transition:transform .15s ease}" +
    ".launcher:hover{transform:scale(1.06)}" +
    ".launcher:focus-visible{outline:3px solid #111;outline-offset:3px}" +
    ".launcher svg{width:28px;height:28px;display:block}" +
    ".badge{position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;padding:0 6px;border-radius:10px;" +
    "background:#d92d20;color:#fff;font:600 12px/20px system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;" +
    "text-align:center;box-sizing:border-box}" +
    ".badge[hidden]{display:none}" +
    ".frame{position:fixed;bottom:88px;width:370px;height:600px;max-height:calc(100vh - 108px);border:0;" +
    "border-radius:16px;box-shadow:0 12px 48px rgba(0,0,0,.28);background:#fff;z-index:2147483647;" +
    "color-scheme:light;display:block}" +
    ".frame[hidden]{display:none}" +
    ".right{right:20px}.left{left:20px}" +
    "@media (max-width:480px){.frame{inset:0;width:100%;height:100%;max-height:none;border-radius:0}" +
    ".open .launcher{display:none}}";

  // Black or white on the site's colour, whichever contrasts more (WCAG 2); the same rule as
  // static/js/contrast.js, which this ES5 loader cannot import.
  function textOn(hex) {
    var h = hex.slice(1);
    if (h.length === 3 || h.length === 4) h = h.charAt(0) + h.charAt(0) + h.charAt(1) + h.charAt(1) + h.charAt(2) + h.charAt(2);
    if (h.length !== 6 && h.length !== 8) return "#ffffff";
    var lum = 0;
    var weights = [0.2126, 0.7152, 0.0722];
    for (var i = 0; i < 3; i++) {
      var c = parseInt(h.substr(i * 2, 2), 16) / 255;
      lum += weights[i] * (c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4));
    }
    var dark = 0.0056; // luminance of #111111
    return (lum + 0.05) / (dark + 0.05) >= 1.05 / (lum + 0.05) ? "#111111" : "#ffffff";
  }

  var SVG = "http://www.w3.org/2000/svg";
  // Built node by node (no innerHTML), so the loader also runs on pages that enforce Trusted Types.
  function svgIcon(pathAttrs) {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(SVG, "path");
    for (var key in pathAttrs) path.setAttribute(key, pathAttrs[key]);
    svg.appendChild(path);
    return svg;
  }
  var ICON_CHAT = svgIcon({
    fill: "currentColor",
    d: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z",
  });
  var ICON_CLOSE = svgIcon({
    d: "M6 6l12 12M18 6L6 18",
    stroke: "currentColor",
    "stroke-width": "2.4",
    "stroke-linecap": "round",
  });

  var host = document.createElement("div");
  host.id = "chatserver-widget";
  // Inline !important outranks the page's own rules for this element (a transform or filter on
  // it would trap the fixed-position launcher inside it).
  host.style.setProperty("all", "initial", "important");
  var root = host.attachShadow({ mode: "open" });
  if ("adoptedStyleSheets" in root && typeof CSSStyleSheet === "function" && "replaceSync" in CSSStyleSheet.prototype) {
    // Constructed stylesheets also work on pages whose CSP forbids inline <style>.
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    var style = document.createElement("style");
    style.textContent = CSS;
    root.appendChild(style);
  }

  var wrap = document.createElement("div");
  var launcher = document.createElement("button");
  launcher.type = "button";
  launcher.className = "launcher " + options.position;
  launcher.style.background = options.color;
  launcher.style.color = textOn(options.color);
  launcher.setAttribute("aria-haspopup", "dialog");
  launcher.setAttribute("aria-expanded", "false");
  var icon = document.createElement("span");
  icon.appendChild(ICON_CHAT);
  var badge = document.createElement("span");
  badge.className = "badge";
  badge.hidden = true;
  launcher.appendChild(icon);
  launcher.appendChild(badge);

  var frame = document.createElement("iframe");
  frame.className = "frame " + options.position;
  frame.src = serverOrigin + "/widget/frame";
  frame.title = options.title || "Chat";
  frame.hidden = true;
  frame.setAttribute("allow", "");
  wrap.appendChild(frame);
  wrap.appendChild(launcher);
  root.appendChild(wrap);

  var state = { open: false, unread: 0, ready: false };

  function label() {
    var base = state.open ? "Close chat" : "Open chat";
    if (!state.open && state.unread > 0) base += " (" + state.unread + " unread)";
    launcher.setAttribute("aria-label", base);
  }

  // The page the visitor is on, for the agents' customer panel (sent again on every open: a
  // single-page site changes its URL without reloading the widget).
  function page() {
    return { url: window.location.href, referrer: document.referrer || "" };
  }

  function send(message) {
    if (!state.ready || !frame.contentWindow) return;
    message.source = "chatserver-loader";
    frame.contentWindow.postMessage(message, serverOrigin);
  }

  function setOpen(open, focusLauncher) {
    state.open = open;
    frame.hidden = !open;
    wrap.className = open ? "open" : "";
    launcher.setAttribute("aria-expanded", String(open));
    icon.replaceChild(open ? ICON_CLOSE : ICON_CHAT, icon.firstChild);
    send(open ? { type: "open", page: page() } : { type: "close" });
    if (open) frame.focus();
    else if (focusLauncher) launcher.focus();
    label();
  }

  function setUnread(count) {
    state.unread = count > 0 ? count : 0;
    badge.hidden = state.unread === 0 || state.open;
    badge.textContent = state.unread > 99 ? "99+" : String(state.unread);
    label();
  }

  launcher.addEventListener("click", function () {
    setOpen(!state.open, false);
    if (state.open) setUnread(0);
  });

  window.addEventListener("message", function (event) {
    // Only our own frame, from the chat server's origin.
    if (event.source !== frame.contentWindow || event.origin !== serverOrigin) return;
    var msg = event.data;
    if (!msg || msg.source !== "chatserver-widget") return;
    if (msg.type === "ready") {
      state.ready = true;
      send({ type: "init", options: options, page: page() });
      if (state.open) send({ type: "open", page: page() });
    } else if (msg.type === "unread") {
      setUnread(state.open ? 0 : Number(msg.count) || 0);
    } else if (msg.type === "close") {
      setOpen(false, true);
    }
  });

  function mount() {
    document.body.appendChild(host);
    label();
  }

  window.__chatserverWidget = true;
  window.ChatserverWidget = {
    open: function () {
      setOpen(true, false);
      setUnread(0);
    },
    close: function () {
      setOpen(false, false);
    },
    toggle: function () {
      if (state.open) this.close();
      else this.open();
    },
    isOpen: function () {
      return state.open;
    },
    unread: function () {
      return state.unread;
    },
  };

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();

// The widget's chat panel. It runs in a frame served from the chat server (so its token and the
// conversation are out of the host page's reach, and the host page's CSS cannot touch it) and
// talks to the loader (widget.js) on the host page with postMessage.

import { fill, h } from "./dom.js";
import { Room, apiError, socketUrl } from "./room.js";
import { Thread } from "./thread.js";
import { AttachmentTray, AttachmentViewer, attachmentStrings, withAttachments } from "./attachments.js";

const STRINGS = {
  en: {
    title: "Chat with us",
    greeting: "Hi! How can we help?",
    placeholder: "Write a message…",
    send: "Send",
    close: "Close chat",
    you: "You",
    assistant: "Assistant",
    agent: "Support",
    sending: "Sending…",
    offline: "You're offline. Reconnecting…",
    reconnecting: "Connection lost. Reconnecting…",
    talkToHuman: "Talk to a human",
    talkToHumanMessage: "I'd like to talk to a human, please.",
    waitingForHuman: "We've asked a team member to join. They'll reply here.",
    agentJoined: "{name} joined the conversation",
    agentLeft: "{name} left the conversation",
    typing: "{name} is typing…",
    assistantTyping: "Assistant is typing…",
    failed: "Something went wrong. Please try again.",
    identityRefused: "We couldn't verify your account, so the chat is unavailable. Please reload the page.",
    expired: "Your previous conversation has expired. Write to start a new one.",
    conversation: "Conversation",
    messageLabel: "Message",
    aiFailed: "The assistant couldn't finish its reply.",
  },
  fr: {
    title: "Discutons",
    greeting: "Bonjour ! Comment pouvons-nous vous aider ?",
    placeholder: "Écrivez un message…",
    send: "Envoyer",
    close: "Fermer la discussion",
    you: "Vous",
    assistant: "Assistant",
    agent: "Support",
    sending: "Envoi…",
    offline: "Vous êtes hors ligne. Reconnexion…",
    reconnecting: "Connexion perdue. Reconnexion…",
    talkToHuman: "Parler à un humain",
    talkToHumanMessage: "Je voudrais parler à un humain, s'il vous plaît.",
    waitingForHuman: "Un membre de l'équipe va vous répondre ici.",
    agentJoined: "{name} a rejoint la conversation",
    agentLeft: "{name} a quitté la conversation",
    typing: "{name} écrit…",
    assistantTyping: "L'assistant écrit…",
    failed: "Une erreur est survenue. Veuillez réessayer.",
    identityRefused: "Votre compte n'a pas pu être vérifié : la discussion est indisponible.",
    expired: "Votre conversation précédente a expiré. Écrivez pour en commencer une nouvelle.",
    conversation: "Conversation",
    messageLabel: "Message",
    aiFailed: "L'assistant n'a pas pu terminer sa réponse.",
  },
};

const STORAGE_PREFIX = "chatserver.widget.v1";
const SUBJECT_CHARS = 80;

const el = (id) => document.getElementById(id);
const ui = {
  panel: el("panel"),
  title: el("panel-title"),
  close: el("close"),
  offline: el("offline"),
  problem: el("problem"),
  list: el("messages"),
  typing: el("typing"),
  handoff: el("handoff"),
  human: el("human"),
  handoffNote: el("handoff-note"),
  form: el("composer"),
  input: el("input"),
  inputLabel: el("input-label"),
  send: el("send"),
};

const allowedOrigins = JSON.parse(document.body.dataset.allowedOrigins || "[]");
let parentOrigin = null;
let options = null;
let t = STRINGS.en;
let locale = "en";
let store = null;
let room = null;
let isOpen = false;
let setupPromise = null;
let typingUsers = new Map(); // user id -> name
let aiTyping = false;
let identityRefused = false;

// ---- the conversation in localStorage ---------------------------------------------------

class Store {
  constructor(key) {
    this.key = key;
    this.data = {};
    try {
      this.data = JSON.parse(window.localStorage.getItem(key) || "{}") || {};
    } catch (err) {
      this.data = {}; // storage blocked (private mode, policy): the chat still works for this page
    }
  }

  get(name) {
    return this.data[name];
  }

  set(values) {
    Object.assign(this.data, values);
    try {
      window.localStorage.setItem(this.key, JSON.stringify(this.data));
    } catch (err) {
      // as above
    }
  }

  clear() {
    this.data = {};
    try {
      window.localStorage.removeItem(this.key);
    } catch (err) {
      // as above
    }
  }
}

// ---- talking to the host page -------------------------------------------------------------

function originAllowed(origin) {
  return origin === window.location.origin || allowedOrigins.includes("*") || allowedOrigins.includes(origin);
}

function tellParent(message) {
  if (parentOrigin && window.parent !== window) window.parent.postMessage({ ...message, source: "chatserver-widget" }, parentOrigin);
}

window.addEventListener("message", (event) => {
  if (event.source !== window.parent || !originAllowed(event.origin)) return;
  const data = event.data;
  if (!data || data.source !== "chatserver-loader") return;
  if (data.type === "init" && !options) {
    parentOrigin = event.origin;
    init(data.options || {});
  } else if (data.type === "open") {
    setOpen(true);
  } else if (data.type === "close") {
    setOpen(false);
  }
});

if (window.parent !== window) {
  // Nothing secret in it, so any parent may hear it: the loader answers with its options.
  window.parent.postMessage({ source: "chatserver-widget", type: "ready" }, "*");
} else {
  // Opened on its own (e.g. a link to /widget/frame): work as a standalone chat page.
  parentOrigin = null;
  init({});
  setOpen(true);
}

// ---- set-up ---------------------------------------------------------------------------------

function init(opts) {
  options = opts;
  locale = typeof opts.locale === "string" ? opts.locale : navigator.language || "en";
  const base = STRINGS[locale.slice(0, 2).toLowerCase()] || STRINGS.en;
  t = { ...STRINGS.en, ...base, ...(opts.strings && typeof opts.strings === "object" ? stringsOnly(opts.strings) : {}) };
  if (typeof opts.title === "string" && opts.title) t.title = opts.title;
  if (typeof opts.greeting === "string") t.greeting = opts.greeting;
  document.documentElement.lang = locale;
  if (typeof opts.color === "string" && /^#[0-9a-fA-F]{3,8}$/.test(opts.color)) {
    document.documentElement.style.setProperty("--accent", opts.color);
  }
  ui.title.textContent = t.title;
  ui.close.setAttribute("aria-label", t.close);
  ui.send.setAttribute("aria-label", t.send);
  ui.input.placeholder = t.placeholder;
  ui.inputLabel.textContent = t.messageLabel;
  ui.list.setAttribute("aria-label", t.conversation);
  ui.human.textContent = t.talkToHuman;
  const identity = validIdentity(opts.user);
  store = new Store(identity ? `${STORAGE_PREFIX}:user:${identity.id}` : `${STORAGE_PREFIX}:anonymous`);
  render();
  wireComposer();
  setupPromise = resume(identity);
}

function stringsOnly(object) {
  const out = {};
  for (const [key, value] of Object.entries(object)) if (typeof value === "string") out[key] = value;
  return out;
}

function validIdentity(user) {
  if (!user || typeof user !== "object") return null;
  if (typeof user.id !== "string" || !user.id || typeof user.signature !== "string") return null;
  return {
    id: user.id,
    signature: user.signature,
    name: typeof user.name === "string" ? user.name : null,
    email: typeof user.email === "string" && user.email ? user.email : null,
  };
}

async function resume(identity) {
  try {
    if (identity) {
      await identify(identity);
      if (!store.get("ticketId")) {
        const ticket = await latestOpenTicket();
        if (ticket) store.set({ ticketId: ticket.id });
      }
    } else if (store.get("token")) {
      await refreshToken();
    }
  } catch (err) {
    if (err.code === "identity_unverified") {
      refuseIdentity();
      return;
    }
    if (err.status === 401) {
      const hadConversation = Boolean(store.get("ticketId"));
      store.clear();
      if (hadConversation) showProblem(t.expired);
      const unsent = room ? room.pendingList() : [];
      if (unsent.length) {
        // Written while we were finding out: it starts the new conversation.
        room.ticketId = null;
        ensureConversation(unsent[0].body).catch(() => showProblem(t.failed));
      }
    } else {
      showProblem(t.failed);
    }
  }
  if (store.get("ticketId")) openRoom(store.get("ticketId"));
}

function refuseIdentity() {
  identityRefused = true;
  store.clear();
  showProblem(t.identityRefused);
  ui.input.disabled = true;
  ui.send.disabled = true;
  ui.human.hidden = true;
}

async function identify(identity) {
  const result = await postJson("/widget/identify", {
    external_id: identity.id,
    signature: identity.signature,
    name: identity.name,
    email: identity.email,
  });
  store.set({ token: result.access_token, userId: result.user.id });
}

async function refreshToken() {
  const result = await postJson("/widget/token", {}, store.get("token"));
  store.set({ token: result.access_token, userId: result.user.id });
}

async function latestOpenTicket() {
  const response = await fetch("/tickets?limit=20", { headers: authHeaders() });
  if (!response.ok) throw await apiError(response);
  const page = await response.json();
  return page.tickets.find((ticket) => ticket.status !== "closed") || null;
}

function authHeaders(token = store.get("token")) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function postJson(path, body, token) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...authHeaders(token) },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw await apiError(response);
  return response.json();
}

// ---- the room -------------------------------------------------------------------------------

function newRoom(ticketId) {
  const created = new Room({
    url: async (afterSeq) => {
      const { ticket } = await postJson("/ws/tickets", {}, store.get("token"));
      const query = new URLSearchParams({ ticket });
      if (afterSeq !== null) query.set("after_seq", String(afterSeq));
      return socketUrl(`/tickets/${encodeURIComponent(ticketId)}/ws?${query}`);
    },
    on: {
      status: renderStatus,
      joined: (frame, { first, fresh }) => {
        if (first) {
          // History a visitor has on arriving (e.g. on a new device) counts as read.
          if (store.get("lastReadSeq") === undefined) store.set({ lastReadSeq: frame.last_seq });
          renderAll();
        } else {
          for (const message of fresh) thread.addMessage(message);
        }
        renderHandoff();
        updateUnread();
      },
      message: (message) => {
        thread.addMessage(message);
        updateUnread();
      },
      pending: (entries) => thread.setPending(entries),
      stream: (state) => {
        if (state.kind !== "reply") return;
        aiTyping = state.text.length === 0;
        renderTyping();
        thread.stream(state);
      },
      streamEnd: (replyId, how, frame) => {
        aiTyping = false;
        renderTyping();
        thread.endStream(replyId);
        if (how === "failed" && frame && !frame.partial) thread.addEvent(t.aiFailed);
      },
      ticket: () => renderHandoff(),
      presence: (kind, user) => {
        if (user.role === "customer") return;
        thread.addEvent(fill(kind === "joined" ? t.agentJoined : t.agentLeft, { name: user.name || t.agent }));
      },
      typing: (user, active) => {
        if (active) typingUsers.set(user.id, user.name || t.agent);
        else typingUsers.delete(user.id);
        renderTyping();
      },
      error: (frame) => {
        if (frame.code !== "rate_limited") showProblem(frame.message || t.failed);
      },
      authFailed: async () => {
        const identity = validIdentity(options.user);
        if (!identity) {
          // An anonymous visitor's token is all there is: once it is refused, the conversation
          // cannot be reached again. Start over cleanly.
          created.stop();
          store.clear();
          room = null;
          renderAll();
          showProblem(t.expired);
          return;
        }
        try {
          await identify(identity);
        } catch (err) {
          if (err.code === "identity_unverified") refuseIdentity();
        }
      },
    },
  });
  created.ticketId = ticketId;
  return created;
}

function openRoom(ticketId) {
  if (!room || room.ticketId !== ticketId) {
    const pending = room ? room.pendingList() : [];
    room = newRoom(ticketId);
    for (const entry of pending) room.send(entry.body, { clientId: entry.client_id, attachments: entry.attachments });
  }
  room.start();
  renderAll();
}

// ---- sending --------------------------------------------------------------------------------

let tray = null;
let viewer = null;

function wireComposer() {
  // Attachments (attachments.js): a file attached before the conversation exists starts it.
  tray = new AttachmentTray({
    form: ui.form,
    input: ui.input,
    buttonBefore: ui.input,
    dropTargets: [ui.panel],
    strings: attachmentStrings(locale, options.strings || {}),
    authHeaders: async (retry) => {
      if (retry) await refreshToken();
      return authHeaders();
    },
    ticketId: async () => {
      await setupPromise;
      if (!store.get("ticketId")) await ensureConversation(tray.items[0] ? tray.items[0].file.name : t.title);
      return store.get("ticketId");
    },
  });
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(ui.input.value);
  });
  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit(ui.input.value);
    } else if (event.key === "Escape") {
      setOpen(false);
      tellParent({ type: "close" });
    }
  });
  ui.input.addEventListener("input", () => {
    autosize();
    if (room) room.setTyping(ui.input.value.trim().length > 0);
  });
  ui.human.addEventListener("click", () => submit(t.talkToHumanMessage, { keepInput: true }));
  ui.close.addEventListener("click", () => {
    setOpen(false);
    tellParent({ type: "close" });
  });
}

function autosize() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 120)}px`;
}

async function submit(text, { keepInput = false } = {}) {
  const body = text.trim();
  if (identityRefused) return;
  if (!keepInput && body) {
    ui.input.value = "";
    autosize();
  }
  // Files still uploading are waited for; refused ones stay in the tray with a retry.
  const files = keepInput || !tray ? [] : await tray.takeReady();
  if (!body && !files.length) return;
  hideProblem();
  if (!room) room = newRoom(store.get("ticketId") || null);
  // Shown at once, marked as sending, whatever happens next.
  room.send(body, { attachments: files });
  if (store.get("ticketId")) return;
  try {
    await setupPromise;
    await ensureConversation(body || files[0].filename);
  } catch (err) {
    showProblem(err.status === 429 ? err.message : t.failed);
  }
}

let creating = null;

function ensureConversation(firstBody) {
  // One conversation even if the visitor sends twice before it exists.
  if (!creating) {
    creating = (async () => {
      if (!store.get("token")) {
        const visitor = await postJson("/widget/visitors", {});
        store.set({ token: visitor.access_token, userId: visitor.user.id });
      }
      if (!store.get("ticketId")) {
        const subject = firstBody.length > SUBJECT_CHARS ? `${firstBody.slice(0, SUBJECT_CHARS - 1)}…` : firstBody;
        const created = await postJson("/tickets", { subject }, store.get("token"));
        store.set({ ticketId: created.ticket.id, lastReadSeq: 0 });
      }
      openRoom(store.get("ticketId"));
    })().finally(() => {
      creating = null;
    });
  }
  return creating;
}

// ---- rendering ------------------------------------------------------------------------------

let thread = null;

function describe(message) {
  if (message.author_kind === "customer") return { kind: "mine", author: null };
  if (message.author_kind === "ai") return { kind: "ai", author: t.assistant };
  if (message.author_kind === "system") return { kind: "system", author: null };
  const user = room && room.present.get(message.author_id);
  return { kind: "agent", author: (user && user.name) || t.agent };
}

function render() {
  thread = new Thread(ui.list, {
    describe,
    pendingLabel: t.sending,
    streamAuthor: t.assistant,
    locale,
    header: () => (t.greeting ? h("li", { class: "msg msg-greeting" }, h("div", { class: "bubble", text: t.greeting })) : null),
  });
  viewer = new AttachmentViewer({ authHeaders: async () => authHeaders(), strings: attachmentStrings(locale, options.strings || {}) });
  withAttachments(thread, viewer);
  renderAll();
  renderHandoff();
}

function renderAll() {
  if (thread) thread.reset(room);
}

function renderTyping() {
  const names = Array.from(typingUsers.values());
  let text = "";
  if (names.length) text = fill(t.typing, { name: names.join(", ") });
  else if (aiTyping) text = t.assistantTyping;
  ui.typing.textContent = text;
  ui.typing.classList.toggle("active", Boolean(text));
}

function renderHandoff() {
  const ticket = room && room.ticket;
  const waiting = Boolean(ticket && ticket.waiting_for_agent);
  const humanHandling = Boolean(ticket && !ticket.ai_enabled);
  ui.human.hidden = identityRefused || waiting || humanHandling;
  ui.handoffNote.hidden = !waiting;
  ui.handoffNote.textContent = waiting ? t.waitingForHuman : "";
}

function renderStatus(state) {
  const offline = state === "offline" || (state !== "online" && !navigator.onLine);
  ui.offline.hidden = !offline;
  ui.offline.textContent = navigator.onLine ? t.reconnecting : t.offline;
  ui.panel.classList.toggle("is-offline", offline);
}

window.addEventListener("offline", () => renderStatus(room ? room.state : "offline"));
window.addEventListener("online", () => renderStatus(room ? room.state : "online"));

function showProblem(text) {
  ui.problem.textContent = text;
  ui.problem.hidden = false;
}

function hideProblem() {
  if (!identityRefused) ui.problem.hidden = true;
}

// ---- open, closed and unread ----------------------------------------------------------------

function setOpen(open) {
  isOpen = open;
  if (open) {
    markRead();
    ui.list.scrollTop = ui.list.scrollHeight;
    setTimeout(() => ui.input.focus(), 0);
  }
}

function markRead() {
  if (!store || !room || room.lastSeq === null) return updateUnread();
  store.set({ lastReadSeq: room.lastSeq });
  return updateUnread();
}

function updateUnread() {
  if (!store) return;
  if (isOpen && room && room.lastSeq !== null && room.lastSeq !== store.get("lastReadSeq")) {
    store.set({ lastReadSeq: room.lastSeq });
  }
  const lastRead = store.get("lastReadSeq") ?? 0;
  let count = 0;
  if (room) {
    for (const message of room.messages.values()) {
      if (message.seq > lastRead && message.author_kind !== "customer") count += 1;
    }
  }
  tellParent({ type: "unread", count });
}

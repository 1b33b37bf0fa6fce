// The widget's chat panel. It runs in a frame served from the chat server (so its token and the
// conversation are out of the host page's reach, and the host page's CSS cannot touch it) and
// talks to the loader (widget.js) on the host page with postMessage.

import { fill, h } from "./dom.js";
import { textOn } from "./contrast.js";
import { Room, apiError, socketUrl } from "./room.js";
import { Thread } from "./thread.js";
import { AttachmentTray, AttachmentViewer, attachmentStrings, withAttachments } from "./attachments.js";
import { RatingCard, ratingStrings } from "./rating.js";
import { HistoryView, historyStrings } from "./history.js";
import { pageVisible, seenLabel, seenSeq, showSeen } from "./seen.js";
import { AwayPanel, applyAdminTexts, awayStrings, languagePolicy, readConfig, takeReopenToken, withAdminSettings } from "./away.js";
import { confirmRow, runningLabel } from "./tool-calls.js";

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
    sources: "Sources",
    incomplete: "Incomplete reply",
    retry: "Try again",
    replying: "The assistant is replying…",
    tookOver: "A person is taking over this conversation.",
    confirmAction: "The assistant would like to: {label}. Shall it go ahead?",
    confirmYes: "Yes, go ahead",
    confirmNo: "No",
    answeringAi: "AI assistant",
    answeringAgent: "{name} is answering",
    expectedReply: "We usually reply in a few minutes.",
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
    sources: "Sources",
    incomplete: "Réponse incomplète",
    retry: "Réessayer",
    replying: "L'assistant répond…",
    tookOver: "Une personne prend le relais de cette conversation.",
    confirmAction: "L'assistant souhaite : {label}. Faut-il continuer ?",
    confirmYes: "Oui, continuer",
    confirmNo: "Non",
    answeringAi: "Assistant IA",
    answeringAgent: "{name} vous répond",
    expectedReply: "Nous répondons en général en quelques minutes.",
  },
  de: {
    title: "Chatten Sie mit uns",
    greeting: "Hallo! Wie können wir helfen?",
    placeholder: "Nachricht schreiben…",
    send: "Senden",
    close: "Chat schließen",
    you: "Sie",
    assistant: "Assistent",
    agent: "Support",
    sending: "Wird gesendet…",
    offline: "Sie sind offline. Verbindung wird wiederhergestellt…",
    reconnecting: "Verbindung verloren. Verbindung wird wiederhergestellt…",
    talkToHuman: "Mit einem Menschen sprechen",
    talkToHumanMessage: "Ich möchte bitte mit einem Menschen sprechen.",
    waitingForHuman: "Wir haben ein Teammitglied gebeten, dazuzukommen. Die Antwort erscheint hier.",
    agentJoined: "{name} ist dem Gespräch beigetreten",
    agentLeft: "{name} hat das Gespräch verlassen",
    typing: "{name} schreibt…",
    assistantTyping: "Der Assistent schreibt…",
    failed: "Etwas ist schiefgelaufen. Bitte versuchen Sie es erneut.",
    identityRefused: "Ihr Konto konnte nicht bestätigt werden, daher ist der Chat nicht verfügbar. Bitte laden Sie die Seite neu.",
    expired: "Ihr früheres Gespräch ist abgelaufen. Schreiben Sie, um ein neues zu beginnen.",
    conversation: "Gespräch",
    messageLabel: "Nachricht",
    aiFailed: "Der Assistent konnte seine Antwort nicht beenden.",
    sources: "Quellen",
    incomplete: "Unvollständige Antwort",
    retry: "Erneut versuchen",
    replying: "Der Assistent antwortet…",
    tookOver: "Ein Mensch übernimmt dieses Gespräch.",
    confirmAction: "Der Assistent möchte: {label}. Soll er fortfahren?",
    confirmYes: "Ja, fortfahren",
    confirmNo: "Nein",
    answeringAi: "KI-Assistent",
    answeringAgent: "{name} antwortet Ihnen",
    expectedReply: "Wir antworten normalerweise innerhalb weniger Minuten.",
  },
  es: {
    title: "Chatea con nosotros",
    greeting: "¡Hola! ¿En qué podemos ayudarte?",
    placeholder: "Escribe un mensaje…",
    send: "Enviar",
    close: "Cerrar el chat",
    you: "Tú",
    assistant: "Asistente",
    agent: "Soporte",
    sending: "Enviando…",
    offline: "Estás sin conexión. Reconectando…",
    reconnecting: "Se perdió la conexión. Reconectando…",
    talkToHuman: "Hablar con una persona",
    talkToHumanMessage: "Me gustaría hablar con una persona, por favor.",
    waitingForHuman: "Hemos pedido a un miembro del equipo que se una. Te responderá aquí.",
    agentJoined: "{name} se unió a la conversación",
    agentLeft: "{name} salió de la conversación",
    typing: "{name} está escribiendo…",
    assistantTyping: "El asistente está escribiendo…",
    failed: "Algo salió mal. Inténtalo de nuevo.",
    identityRefused: "No pudimos verificar tu cuenta, así que el chat no está disponible. Vuelve a cargar la página.",
    expired: "Tu conversación anterior ha caducado. Escribe para empezar una nueva.",
    conversation: "Conversación",
    messageLabel: "Mensaje",
    aiFailed: "El asistente no pudo terminar su respuesta.",
    sources: "Fuentes",
    incomplete: "Respuesta incompleta",
    retry: "Reintentar",
    replying: "El asistente está respondiendo…",
    tookOver: "Una persona se hace cargo de esta conversación.",
    confirmAction: "El asistente quiere: {label}. ¿Continuar?",
    confirmYes: "Sí, continuar",
    confirmNo: "No",
    answeringAi: "Asistente de IA",
    answeringAgent: "{name} te responde",
    expectedReply: "Solemos responder en pocos minutos.",
  },
};

const STORAGE_PREFIX = "chatserver.widget.v1";
const SUBJECT_CHARS = 80;

const el = (id) => document.getElementById(id);
const ui = {
  panel: el("panel"),
  title: el("panel-title"),
  who: el("who"),
  avatar: el("who-avatar"),
  whoName: el("who-name"),
  expected: el("expected"),
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
  historyButton: el("history-button"),
  history: el("history"),
  rating: el("rating"),
  away: el("away"),
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
let actionLabel = null; // the label of the AI action under way (tool-calls.js), or null
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
  if (data.page && typeof data.page === "object") hostPage = data.page;
  if (data.type === "init" && !options) {
    parentOrigin = event.origin;
    init(data.options || {});
  } else if (data.type === "open") {
    setOpen(true);
  } else if (data.type === "close") {
    setOpen(false);
  }
});

// ---- set-up ---------------------------------------------------------------------------------

/** The site's locale (data-locale) when we have its strings, else the browser's first one we have;
 * only among the languages the admin allows (policy.allowed), else the admin's default. */
function pickLocale(requested, policy = { allowed: null, fallback: "en" }) {
  const candidates = [];
  if (typeof requested === "string" && requested) candidates.push(requested);
  for (const lang of navigator.languages || [navigator.language]) if (lang) candidates.push(lang);
  for (const candidate of candidates) {
    const base = candidate.slice(0, 2).toLowerCase();
    if (STRINGS[base] && (!policy.allowed || policy.allowed.includes(base))) return { locale: candidate, strings: STRINGS[base] };
  }
  const fallback = STRINGS[policy.fallback] ? policy.fallback : "en";
  return { locale: policy.allowed || !candidates[0] ? fallback : candidates[0], strings: STRINGS[fallback] };
}

let config = null;
let away = null;

function init(opts) {
  // The admin's settings (GET /admin/widget-settings) win over the embed script's data-* options.
  config = readConfig();
  opts = withAdminSettings(opts, config.settings);
  options = opts;
  const picked = pickLocale(opts.locale, languagePolicy(config.settings));
  locale = picked.locale;
  const base = locale.slice(0, 2).toLowerCase();
  t = {
    ...STRINGS.en,
    ...picked.strings,
    ...(opts.strings && typeof opts.strings === "object" ? stringsOnly(opts.strings) : {}),
  };
  if (typeof opts.title === "string" && opts.title) t.title = opts.title;
  if (typeof opts.greeting === "string") t.greeting = opts.greeting;
  if (typeof opts.expectedReply === "string") t.expectedReply = opts.expectedReply;
  applyAdminTexts(t, config.settings, base);
  document.documentElement.lang = locale;
  if (typeof opts.color === "string" && /^#[0-9a-fA-F]{3,8}$/.test(opts.color)) {
    document.documentElement.style.setProperty("--accent", opts.color);
    // Text on the accent (header, own bubbles, send button): black or white, whichever reads.
    document.documentElement.style.setProperty("--accent-text", textOn(opts.color));
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
  wireExtras();
  away = new AwayPanel(ui.away, { config, t: awayStrings(base, t), locale, api: awayApi() });
  renderWho();
  setupPromise = resume(identity, identity ? null : takeReopenToken());
}

/** What the away panel asks of the server, for the current conversation. */
function awayApi() {
  return {
    setContactEmail: async (email) => {
      await setupPromise;
      const ticketId = store.get("ticketId");
      if (!ticketId || !store.get("token")) return null; // saved once the conversation starts
      const response = await fetch(`/tickets/${encodeURIComponent(ticketId)}/contact-email`, {
        method: "PUT",
        headers: { "Content-Type": "application/json", ...authHeaders() },
        body: JSON.stringify({ email }),
      });
      if (!response.ok) throw await apiError(response);
      return (await response.json()).ticket;
    },
    requestTranscript: async (email) => {
      const ticketId = store.get("ticketId");
      const result = await postJson(`/tickets/${encodeURIComponent(ticketId)}/transcript`, email ? { email } : {}, store.get("token"));
      return result.transcript;
    },
  };
}

/** A reply email's link (#reopen=...): sign this visitor back into that conversation. */
async function reopen(token) {
  try {
    const result = await postJson("/widget/reopen", { token });
    store.clear();
    store.set({ token: result.access_token, userId: result.user.id, ticketId: result.ticket_id });
  } catch (err) {
    if (err.status === 401 || err.status === 404) showProblem(awayStrings(locale.slice(0, 2), t).linkExpired);
    else showProblem(t.failed);
  }
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

async function resume(identity, reopenToken = null) {
  if (reopenToken) await reopen(reopenToken);
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

/** ai.tool_call: the action's label replaces "typing…" while it runs (tool-calls.js), and an
 * action the admin lets the customer confirm (a cancellation…) is asked about here. */
function showToolCall(frame) {
  actionLabel = runningLabel(frame);
  renderTyping();
  const ask = thread.list.querySelector(`li[data-tool-call="${CSS.escape(frame.call_id)}"]`);
  if (frame.status === "awaiting_approval" && frame.confirm_by === "customer" && !ask) {
    const decide = (approve) => room && room.sendFrame({ type: approve ? "ai.tool_call.approve" : "ai.tool_call.refuse", call_id: frame.call_id });
    thread.addNode(confirmRow(frame, { ask: fill(t.confirmAction, { label: frame.label }), yes: t.confirmYes, no: t.confirmNo }, decide));
  } else if (frame.status !== "awaiting_approval" && ask) {
    ask.remove();
  }
}

/** After (re)opening: the calls still waiting for this visitor's confirmation. */
async function askAgain(ticketId) {
  try {
    const response = await fetch(`/tickets/${encodeURIComponent(ticketId)}/tool-calls`, { headers: authHeaders() });
    if (!response.ok) return;
    for (const call of (await response.json()).tool_calls) {
      showToolCall({ call_id: call.id, reply_id: call.reply_id, label: call.label, status: call.status, confirm_by: call.confirm_by });
    }
  } catch {
    // Only a convenience: the agents can still approve.
  }
}

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
          // A reply in flight may be waiting for this visitor to confirm an action.
          if (frame.streams.some((s) => s.kind === "reply")) askAgain(ticketId);
        } else {
          for (const message of fresh) thread.addMessage(message);
        }
        renderHandoff();
        renderWho();
        renderRetry();
        updateUnread();
        renderExtras();
        if (away) away.setTicket(room.ticket);
      },
      message: (message) => {
        failedWithoutText = false;
        thread.addMessage(message);
        renderRetry();
        updateUnread();
        renderExtras();
      },
      read: () => renderSeen(),
      pending: (entries) => thread.setPending(entries),
      // While the assistant runs an action, its label ("Looking up order 1042…") replaces "typing".
      toolCall: showToolCall,
      stream: (state) => {
        if (state.kind !== "reply") return;
        aiTyping = state.text.length === 0;
        renderTyping();
        thread.stream(state);
        renderRetry();
      },
      streamEnd: (replyId, how, frame, state) => {
        aiTyping = false;
        actionLabel = null;
        renderTyping();
        if (how === "cancelled") {
          // A person took over mid-reply: what the visitor already read stays, with a word on why.
          thread.keepStream(replyId, state ? state.text : "", t.tookOver);
        } else {
          thread.endStream(replyId);
        }
        if (how === "failed" && frame && !frame.partial) {
          thread.addEvent(t.aiFailed);
          failedWithoutText = true;
        }
        renderRetry();
      },
      ticket: () => {
        renderHandoff();
        renderWho();
        renderRetry();
        renderExtras();
        if (away) away.setTicket(room.ticket);
      },
      presence: (kind, user, known) => {
        renderWho();
        // The server tells visitors about agents only once they write or take over (docs/protocol.md).
        if (user.role === "customer" || (kind === "joined" && known)) return;
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
    }
  });
  // Esc closes from anywhere in the panel (the message list, a link, a button), not only the box.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.isComposing || event.defaultPrevented) return;
    setOpen(false);
    tellParent({ type: "close" });
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
let hostPage = null; // {url, referrer} of the host page, from the loader (widget.js)
const MAX_URL_CHARS = 2048;

// The server's checks (chatserver/services/customer_panel.py): a value that would fail them is
// left out here, so an odd browser never stops a visitor from starting a conversation.
const LANGUAGE_TAG = /^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$/;
const TIME_ZONE_NAME = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+){0,3}$/;

/** What agents see in the customer panel (POST /tickets `context`; docs/web.md). */
function visitorContext() {
  const text = (value, max) => (typeof value === "string" ? value.replace(/[\u0000-\u001f\u007f]/g, "").slice(0, max) : "");
  const checked = (value, pattern, max) => {
    const clean = text(value, max);
    return pattern.test(clean) ? clean : "";
  };
  let zone = "";
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (err) {
    // no time zone: the panel shows none
  }
  return {
    page_url: text(hostPage && hostPage.url, MAX_URL_CHARS),
    referrer: text(hostPage && hostPage.referrer, MAX_URL_CHARS),
    user_agent: text(navigator.userAgent, 512),
    language: checked(navigator.language, LANGUAGE_TAG, 35),
    time_zone: checked(zone, TIME_ZONE_NAME, 64),
  };
}

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
        const created = await postJson("/tickets", { subject, context: visitorContext() }, store.get("token"));
        store.set({ ticketId: created.ticket.id, lastReadSeq: 0 });
        // An address the visitor gave before writing goes to the new conversation.
        if (away) away.ticketReady().catch(() => {});
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
let failedWithoutText = false; // the last reply failed before any text was stored

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
    labels: { sources: t.sources, incomplete: t.incomplete, retry: t.retry, replying: t.replying, tookOver: t.tookOver },
    onRetry: retryReply,
    header: () => (t.greeting ? h("li", { class: "msg msg-greeting" }, h("div", { class: "bubble", text: t.greeting })) : null),
  });
  viewer = new AttachmentViewer({ authHeaders: async () => authHeaders(), strings: attachmentStrings(locale, options.strings || {}) });
  withAttachments(thread, viewer);
  renderAll();
  renderHandoff();
  renderWho();
}

function renderAll() {
  if (thread) {
    thread.reset(room);
    renderRetry();
  }
}

/** Offer "Try again" when the conversation ends on a failed or cut-off AI reply. */
function renderRetry() {
  if (!thread) return;
  let show = false;
  if (room && room.ticket && room.ticket.ai_enabled && room.streams.size === 0 && !identityRefused) {
    const messages = room.sortedMessages();
    const last = messages[messages.length - 1];
    show = failedWithoutText || Boolean(last && last.author_kind === "ai" && last.metadata && last.metadata.incomplete === true);
  }
  thread.setRetry(show);
}

function retryReply() {
  if (!room || !room.sendFrame({ type: "ai.retry" })) {
    showProblem(t.failed);
    return;
  }
  failedWithoutText = false;
  thread.setRetry(false);
  hideProblem();
}

function initials(name) {
  const words = String(name || "").trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return letters.map((w) => Array.from(w)[0].toUpperCase()).join("") || "?";
}

/** The header's second line: who is answering, and until a person has joined, when to expect one. */
function renderWho() {
  const ticket = room && room.ticket;
  let agent = null;
  if (room) for (const user of room.present.values()) if (user.role !== "customer") agent = user;
  if (agent) {
    const name = agent.name || t.agent;
    ui.avatar.textContent = initials(name);
    ui.avatar.className = "avatar avatar-agent";
    ui.whoName.textContent = fill(t.answeringAgent, { name });
  } else if (ticket && ticket.ai_enabled) {
    ui.avatar.textContent = "✦";
    ui.avatar.className = "avatar avatar-ai";
    ui.whoName.textContent = t.answeringAi;
  } else {
    ui.avatar.textContent = "";
    ui.avatar.className = "avatar";
    ui.whoName.textContent = "";
  }
  ui.avatar.hidden = !ui.avatar.textContent;
  // "We usually reply in a few minutes" is not said while the away panel says nobody is there.
  const quiet = Boolean(agent) || Boolean(away && away.isAway);
  ui.expected.textContent = quiet ? "" : t.expectedReply;
  ui.expected.hidden = quiet || !t.expectedReply;
  ui.who.hidden = !ui.whoName.textContent && ui.expected.hidden;
}

function renderTyping() {
  const names = Array.from(typingUsers.values());
  let text = "";
  if (names.length) text = fill(t.typing, { name: names.join(", ") });
  else if (actionLabel) text = actionLabel;
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
    refreshConfig();
    markRead();
    reportRead();
    ui.list.scrollTop = ui.list.scrollHeight;
    setTimeout(() => ui.input.focus(), 0);
  }
}

/** Business hours and agents change while a page stays open: look again when the panel opens. */
async function refreshConfig() {
  try {
    const response = await fetch("/widget/config");
    if (response.ok && away) {
      away.update(await response.json());
      renderWho();
    }
  } catch (err) {
    // offline: keep what we had
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

// ---- rating, "Seen" and conversation history (rating.js, seen.js, history.js) ----------------

let ratingCard = null;
let historyView = null;
let historyShown = false;
const DISMISSED_KEEP = 20;

function wireExtras() {
  const overrides = options.strings && typeof options.strings === "object" ? options.strings : {};
  const historyText = historyStrings(locale, overrides);
  ui.historyButton.setAttribute("aria-label", historyText.historyOpen);
  ui.historyButton.title = historyText.historyOpen;
  ratingCard = new RatingCard({
    root: ui.rating,
    strings: ratingStrings(locale, overrides),
    submit: (ticketId, body) => postJson(`/tickets/${encodeURIComponent(ticketId)}/rating`, body, store.get("token")),
    dismissed: (ticketId) => (store.get("ratingDismissed") || []).includes(ticketId),
    dismiss: (ticketId) => store.set({ ratingDismissed: [...(store.get("ratingDismissed") || []), ticketId].slice(-DISMISSED_KEEP) }),
  });
  historyView = new HistoryView({
    root: ui.history,
    strings: historyText,
    locale,
    load: async (cursor) => {
      const query = new URLSearchParams({ limit: "20" });
      if (cursor) query.set("cursor", cursor);
      const response = await fetch(`/widget/conversations?${query}`, { headers: authHeaders() });
      if (!response.ok) throw await apiError(response);
      return response.json();
    },
    currentId: () => store.get("ticketId") || null,
    onOpen: (ticketId) => {
      showHistory(false);
      if (ticketId !== store.get("ticketId")) switchConversation(ticketId);
    },
    onNew: () => {
      showHistory(false);
      switchConversation(null);
    },
    onBack: () => showHistory(false),
  });
  ui.historyButton.addEventListener("click", () => showHistory(!historyShown));
  document.addEventListener("visibilitychange", reportRead);
  renderExtras();
}

/** The history list in place of the conversation (or back). */
function showHistory(show) {
  historyShown = show;
  ui.panel.classList.toggle("show-history", show);
  ui.history.hidden = !show;
  ui.historyButton.setAttribute("aria-expanded", String(show));
  if (show) {
    historyView.show().then(() => ui.history.querySelector("button")?.focus());
  } else {
    reportRead();
    setTimeout(() => ui.input.focus(), 0);
  }
}

/** Leave the current conversation for another one of the visitor's, or for a new one (null). */
function switchConversation(ticketId) {
  if (room) room.stop();
  room = null;
  failedWithoutText = false;
  typingUsers = new Map();
  aiTyping = false;
  store.set({ ticketId: ticketId || null, lastReadSeq: undefined });
  hideProblem();
  if (ticketId) openRoom(ticketId);
  else renderAll();
  renderHandoff();
  renderWho();
  renderTyping();
  renderExtras();
}

function renderExtras() {
  if (!ratingCard) return;
  ui.historyButton.hidden = identityRefused || !(store && store.get("token"));
  ratingCard.render(room && room.ticket && room.ticketId === room.ticket.id ? room.ticket : null);
  renderSeen();
  reportRead();
}

/** "Seen" under the visitor's last message once an agent's read cursor covers it. */
function renderSeen() {
  if (!thread) return;
  const you = room && room.you;
  const seq = room && you ? seenSeq(room, (m) => m.author_id === you.id, room.readBy((user) => user.role !== "customer")) : null;
  showSeen(ui.list, seq, seenLabel(locale, options.strings || {}));
}

/** Tell the room what the visitor has read: what is on screen while the panel is open. */
function reportRead() {
  if (room && isOpen && !historyShown && pageVisible()) room.markRead(room.lastSeq);
}

// ---- start ----------------------------------------------------------------------------------
// Last, after every declaration above: init() uses them (a call before `let thread` threw a
// ReferenceError when the frame page was opened on its own).

if (window.parent !== window) {
  // Nothing secret in it, so any parent may hear it: the loader answers with its options.
  window.parent.postMessage({ source: "chatserver-widget", type: "ready" }, "*");
} else {
  // Opened on its own (e.g. a link to /widget/frame): work as a standalone chat page.
  parentOrigin = null;
  init({});
  setOpen(true);
}

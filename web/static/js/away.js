// Away mode and email in the widget (docs/web.md, "Away mode and email"): the admin's settings
// applied over the embed script's options, the "we're away" notice with an optional email
// address, the transcript button once a conversation is resolved or closed, and signing a
// visitor back in from the link in a reply email (#reopen=<token>).

import { fill, h } from "./dom.js";

const STRINGS = {
  en: {
    awayNotice: "We're away right now.",
    awayUntil: "We'll be back {when}.",
    awayNoAgent: "Nobody from the team is online; we'll reply here as soon as we can.",
    emailAsk: "Leave your email and we'll send our reply there too if you've left.",
    emailLabel: "Your email (optional)",
    emailSave: "Save",
    emailSaved: "We'll email you at {email}.",
    emailChange: "Change",
    emailInvalid: "Please enter a valid email address.",
    transcript: "Email me the transcript",
    transcriptSent: "The transcript is on its way to {email}.",
    transcriptFailed: "We couldn't send the transcript. Please try again later.",
    linkExpired: "This link has expired. Write to us again below.",
  },
  fr: {
    awayNotice: "Nous sommes absents pour le moment.",
    awayUntil: "Nous serons de retour {when}.",
    awayNoAgent: "Personne de l'équipe n'est en ligne ; nous répondrons ici dès que possible.",
    emailAsk: "Laissez votre e-mail et nous vous enverrons aussi notre réponse si vous êtes parti.",
    emailLabel: "Votre e-mail (facultatif)",
    emailSave: "Enregistrer",
    emailSaved: "Nous vous écrirons à {email}.",
    emailChange: "Modifier",
    emailInvalid: "Veuillez saisir une adresse e-mail valide.",
    transcript: "M'envoyer la transcription",
    transcriptSent: "La transcription est envoyée à {email}.",
    transcriptFailed: "La transcription n'a pas pu être envoyée. Réessayez plus tard.",
    linkExpired: "Ce lien a expiré. Écrivez-nous à nouveau ci-dessous.",
  },
  de: {
    awayNotice: "Wir sind gerade nicht da.",
    awayUntil: "Wir sind {when} wieder da.",
    awayNoAgent: "Gerade ist niemand aus dem Team online; wir antworten hier so bald wie möglich.",
    emailAsk: "Hinterlassen Sie Ihre E-Mail-Adresse, dann schicken wir die Antwort auch dorthin, falls Sie gegangen sind.",
    emailLabel: "Ihre E-Mail-Adresse (optional)",
    emailSave: "Speichern",
    emailSaved: "Wir schreiben Ihnen an {email}.",
    emailChange: "Ändern",
    emailInvalid: "Bitte geben Sie eine gültige E-Mail-Adresse ein.",
    transcript: "Verlauf per E-Mail senden",
    transcriptSent: "Der Verlauf ist unterwegs an {email}.",
    transcriptFailed: "Der Verlauf konnte nicht gesendet werden. Bitte später erneut versuchen.",
    linkExpired: "Dieser Link ist abgelaufen. Schreiben Sie uns unten erneut.",
  },
  es: {
    awayNotice: "Ahora mismo no estamos disponibles.",
    awayUntil: "Volveremos {when}.",
    awayNoAgent: "No hay nadie del equipo conectado; responderemos aquí lo antes posible.",
    emailAsk: "Déjanos tu email y, si te has ido, también te enviaremos la respuesta allí.",
    emailLabel: "Tu email (opcional)",
    emailSave: "Guardar",
    emailSaved: "Te escribiremos a {email}.",
    emailChange: "Cambiar",
    emailInvalid: "Introduce un email válido.",
    transcript: "Enviarme la transcripción",
    transcriptSent: "La transcripción va de camino a {email}.",
    transcriptFailed: "No pudimos enviar la transcripción. Inténtalo más tarde.",
    linkExpired: "Este enlace ha caducado. Vuelve a escribirnos abajo.",
  },
};

// The server's check (services/auth.py EMAIL_RE): something@domain.tld, no spaces.
const EMAIL_RE = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;

/** What the frame page embedded: the admin's settings and the away status (GET /widget/config). */
export function readConfig() {
  try {
    const config = JSON.parse(document.body.dataset.widgetConfig || "null");
    if (config && typeof config === "object" && config.settings) return config;
  } catch (err) {
    // a page without it (an older server): no admin settings, never away
  }
  return { settings: {}, status: { away: false }, email: { enabled: false, ask: false } };
}

/**
 * The embed script's options with the admin's colour over them: set by the admin, it wins; left
 * unset (null), the data-color attribute stays, then the built-in default.
 */
export function withAdminSettings(options, settings) {
  const out = { ...options };
  if (settings.color) out.color = settings.color;
  return out;
}

/**
 * The admin's texts over the built-in strings and the embed script's (data-* and its strings):
 * first their strings for this language, then the fields of their own (title, greeting,
 * expected reply line), so the dedicated field wins over a string of the same name.
 */
export function applyAdminTexts(t, settings, base) {
  const table = settings.strings && settings.strings[base];
  if (table && typeof table === "object") for (const [k, v] of Object.entries(table)) if (typeof v === "string") t[k] = v;
  if (settings.title) t.title = settings.title;
  if (settings.greeting) t.greeting = settings.greeting;
  if (settings.expected_reply) t.expectedReply = settings.expected_reply;
  return t;
}

/** Languages the admin allows (null: all), and the one to fall back on. */
export function languagePolicy(settings) {
  const allowed = Array.isArray(settings.languages) && settings.languages.length ? settings.languages : null;
  return { allowed, fallback: settings.default_locale || (allowed ? allowed[0] : "en") };
}

export function awayStrings(base, overrides) {
  return { ...STRINGS.en, ...(STRINGS[base] || {}), ...overrides };
}

/** #reopen=<token> in the frame's address: the link of a reply email. Removed from the address at once. */
export function takeReopenToken() {
  const match = /^#reopen=([A-Za-z0-9._-]+)$/.exec(window.location.hash);
  if (!match) return null;
  history.replaceState(null, "", window.location.pathname + window.location.search);
  return match[1];
}

/**
 * The notice under the header while the team is away, with the optional email address, and the
 * transcript button under a resolved or closed conversation.
 */
export class AwayPanel {
  /**
   * config: readConfig(); t: strings; locale: for dates;
   * api: { setContactEmail(email) -> Promise<ticket|null> (null: no conversation yet),
   *        requestTranscript(email|null) -> Promise<{email}> }
   */
  constructor(root, { config, t, locale, api }) {
    this.root = root;
    this.config = config;
    this.t = t;
    this.locale = locale;
    this.api = api;
    this.email = null; // the saved address (the ticket's contact_email, or waiting for the ticket)
    this.editing = false;
    this.ticket = null;
    this.transcriptNote = null;
    this.render();
  }

  /** The team is away (outside business hours, or nobody online): the panel says so and when. */
  get isAway() {
    return Boolean(this.config.status && this.config.status.away);
  }

  get asking() {
    return Boolean(this.config.email && this.config.email.ask);
  }

  /** The conversation's ticket as the room knows it (joined, ticket.updated). */
  setTicket(ticket) {
    this.ticket = ticket;
    if (ticket && ticket.contact_email && !this.editing) this.email = ticket.contact_email;
    this.render();
  }

  /** A fresh GET /widget/config (the panel was opened again: hours or agents may have changed). */
  update(config) {
    if (config && config.settings) {
      this.config = config;
      this.render();
    }
  }

  /** The conversation now exists: an address given before it goes to it. */
  async ticketReady() {
    if (this.email) await this.save(this.email);
  }

  async save(email) {
    const value = email.trim();
    if (!EMAIL_RE.test(value)) {
      this.showError(this.t.emailInvalid);
      return;
    }
    this.email = value;
    this.editing = false;
    try {
      const ticket = await this.api.setContactEmail(value);
      if (ticket) this.ticket = ticket;
    } catch (err) {
      this.editing = true;
      this.render();
      this.showError(err.status === 422 ? this.t.emailInvalid : err.message || this.t.emailInvalid);
      return;
    }
    this.render();
  }

  showError(text) {
    const note = this.root.querySelector(".away-error");
    if (note) {
      note.textContent = text;
      note.hidden = false;
    }
  }

  async sendTranscript() {
    try {
      const result = await this.api.requestTranscript(this.email);
      this.transcriptNote = fill(this.t.transcriptSent, { email: result.email });
    } catch (err) {
      this.transcriptNote = err.status === 422 ? this.t.emailInvalid : err.message || this.t.transcriptFailed;
      if (err.status === 422) this.editing = true;
    }
    this.render();
  }

  whenBack() {
    const at = this.config.status && this.config.status.next_open_at;
    if (!at) return null;
    try {
      const when = new Intl.DateTimeFormat(this.locale, { weekday: "long", hour: "numeric", minute: "2-digit" }).format(new Date(at));
      return fill(this.t.awayUntil, { when });
    } catch (err) {
      return null;
    }
  }

  render() {
    const root = this.root;
    while (root.firstChild) root.removeChild(root.firstChild);
    const status = this.config.status || {};
    const settings = this.config.settings || {};
    const closed = Boolean(this.ticket && (this.ticket.status === "resolved" || this.ticket.status === "closed"));
    const emailOn = Boolean(this.config.email && this.config.email.enabled);
    const parts = [];
    if (status.away && !closed) {
      const lines = [settings.away_message || this.t.awayNotice];
      const back = status.open === false ? this.whenBack() : null;
      if (back) lines.push(back);
      else if (status.open !== false && !settings.away_message) lines.push(this.t.awayNoAgent);
      parts.push(h("p", { class: "away-text", text: lines.join(" ") }));
    }
    if (this.asking && !closed) parts.push(this.emailPart());
    if (closed && emailOn && this.ticket) {
      parts.push(
        h(
          "div",
          { class: "away-transcript" },
          h("button", { type: "button", class: "away-button", id: "transcript", onclick: () => this.sendTranscript(), text: this.t.transcript }),
          this.transcriptNote ? h("p", { class: "away-note", role: "status", text: this.transcriptNote }) : null,
        ),
      );
      if (this.editing || (!this.email && this.transcriptNote)) parts.push(this.emailPart());
    }
    for (const part of parts) root.appendChild(part);
    root.hidden = parts.length === 0;
  }

  emailPart() {
    if (this.email && !this.editing) {
      return h(
        "p",
        { class: "away-note", role: "status" },
        fill(this.t.emailSaved, { email: this.email }),
        " ",
        h("button", { type: "button", class: "link-button", onclick: () => { this.editing = true; this.render(); }, text: this.t.emailChange }),
      );
    }
    const input = h("input", {
      type: "email",
      id: "away-email",
      class: "away-input",
      autocomplete: "email",
      inputmode: "email",
      placeholder: this.t.emailLabel,
      value: this.email || "",
      "aria-describedby": "away-email-ask",
    });
    return h(
      "form",
      {
        class: "away-form",
        novalidate: true,
        onsubmit: (event) => {
          event.preventDefault();
          this.save(input.value);
        },
      },
      h("p", { class: "away-ask", id: "away-email-ask", text: this.t.emailAsk }),
      h("label", { class: "sr-only", for: "away-email", text: this.t.emailLabel }),
      h("div", { class: "away-row" }, input, h("button", { type: "submit", class: "away-button", text: this.t.emailSave })),
      h("p", { class: "away-error", role: "alert", hidden: true }),
    );
  }
}

// Ratings (POST /tickets/{id}/rating, docs/web.md): the widget asks "How did we do?" once a
// conversation is resolved or closed; the console shows the rating in the ticket's header.

import { clear, h } from "./dom.js";

export const MAX_SCORE = 5;
const COMMENT_CHARS = 1000;

const STRINGS = {
  en: {
    rateTitle: "How did we do?",
    rateScore: "{score} of 5: {label}",
    rateLabels: "Very bad|Bad|Okay|Good|Great",
    rateComment: "Anything to add? (optional)",
    rateSend: "Send",
    rateLater: "Not now",
    rateThanks: "Thanks for your feedback!",
    rateGiven: "You rated this conversation {score} of 5.",
    rateFailed: "Your rating couldn't be sent. Please try again.",
  },
  fr: {
    rateTitle: "Comment s'est passé cet échange ?",
    rateScore: "{score} sur 5 : {label}",
    rateLabels: "Très mauvais|Mauvais|Correct|Bien|Excellent",
    rateComment: "Un commentaire ? (facultatif)",
    rateSend: "Envoyer",
    rateLater: "Plus tard",
    rateThanks: "Merci pour votre avis !",
    rateGiven: "Vous avez noté cette conversation {score} sur 5.",
    rateFailed: "Votre note n'a pas pu être envoyée. Veuillez réessayer.",
  },
  de: {
    rateTitle: "Wie war unser Service?",
    rateScore: "{score} von 5: {label}",
    rateLabels: "Sehr schlecht|Schlecht|Okay|Gut|Sehr gut",
    rateComment: "Möchten Sie noch etwas sagen? (optional)",
    rateSend: "Senden",
    rateLater: "Später",
    rateThanks: "Danke für Ihr Feedback!",
    rateGiven: "Sie haben dieses Gespräch mit {score} von 5 bewertet.",
    rateFailed: "Ihre Bewertung konnte nicht gesendet werden. Bitte versuchen Sie es erneut.",
  },
  es: {
    rateTitle: "¿Qué tal lo hicimos?",
    rateScore: "{score} de 5: {label}",
    rateLabels: "Muy mal|Mal|Regular|Bien|Excelente",
    rateComment: "¿Algo más que añadir? (opcional)",
    rateSend: "Enviar",
    rateLater: "Ahora no",
    rateThanks: "¡Gracias por tu opinión!",
    rateGiven: "Valoraste esta conversación con {score} de 5.",
    rateFailed: "No se pudo enviar tu valoración. Inténtalo de nuevo.",
  },
};

export function ratingStrings(locale, overrides = {}) {
  const base = STRINGS[String(locale || "en").slice(0, 2).toLowerCase()] || STRINGS.en;
  const out = { ...STRINGS.en, ...base };
  for (const key of Object.keys(STRINGS.en)) if (typeof overrides[key] === "string") out[key] = overrides[key];
  return out;
}

function fill(template, values) {
  return String(template).replace(/\{(\w+)\}/g, (match, key) => (key in values ? String(values[key]) : match));
}

/**
 * The widget's rating card, drawn into `root` (a <section>) for the room's ticket.
 * @param {object} options
 * @param {HTMLElement} options.root
 * @param {object} options.strings  ratingStrings(...)
 * @param {(ticketId: string, body: object) => Promise<object>} options.submit  POSTs the rating
 * @param {(ticketId: string) => boolean} options.dismissed  the visitor said "Not now" for it
 * @param {(ticketId: string) => void} options.dismiss
 */
export class RatingCard {
  constructor({ root, strings, submit, dismissed, dismiss }) {
    this.root = root;
    this.t = strings;
    this.submit = submit;
    this.dismissed = dismissed;
    this.dismiss = dismiss;
    this.ticketId = null;
    this.score = null;
    this.thanked = null; // the ticket just rated here: thank, rather than ask again
    this.busy = false;
  }

  /** Redraw for `ticket` (null: nothing to show). Asks only for a finished, unrated ticket. */
  render(ticket) {
    if (!ticket) {
      this.hide();
      return;
    }
    if (ticket.id !== this.ticketId) {
      this.ticketId = ticket.id;
      this.score = null;
    }
    if (ticket.rating !== null && ticket.rating !== undefined) {
      if (this.thanked === ticket.id) this.draw([h("p", { class: "rating-done", role: "status", text: this.t.rateThanks })]);
      else this.draw([h("p", { class: "rating-done", text: fill(this.t.rateGiven, { score: ticket.rating }) })]);
      return;
    }
    const finished = ticket.status === "resolved" || ticket.status === "closed";
    if (!finished || this.dismissed(ticket.id)) {
      this.hide();
      return;
    }
    if (this.root.dataset.asking === ticket.id) return; // already asking: keep what the visitor typed
    this.ask(ticket.id);
  }

  hide() {
    this.root.hidden = true;
    delete this.root.dataset.asking;
    clear(this.root);
  }

  draw(children) {
    delete this.root.dataset.asking;
    clear(this.root);
    this.root.append(...children);
    this.root.hidden = false;
  }

  ask(ticketId) {
    const labels = this.t.rateLabels.split("|");
    const problem = h("p", { class: "rating-problem", role: "alert", hidden: true });
    const comment = h("textarea", { id: "rating-comment", rows: "2", maxlength: String(COMMENT_CHARS) });
    const send = h("button", { type: "submit", class: "rating-send", text: this.t.rateSend, disabled: true });
    // Numbers, not emoji faces: many systems lack some of those glyphs (boxes instead of faces).
    const buttons = Array.from({ length: MAX_SCORE }, (_, i) =>
      h(
        "button",
        {
          type: "button",
          class: "rating-score",
          "aria-pressed": "false",
          "aria-label": fill(this.t.rateScore, { score: i + 1, label: labels[i] || String(i + 1) }),
          title: labels[i] || String(i + 1),
          dataset: { score: String(i + 1) },
          onclick: () => {
            this.score = i + 1;
            for (const b of buttons) b.setAttribute("aria-pressed", String(b === buttons[i]));
            send.disabled = false;
          },
        },
        h("span", { "aria-hidden": "true", text: String(i + 1) }),
      ),
    );
    const legend = h(
      "div",
      { class: "rating-legend", "aria-hidden": "true" },
      h("span", { text: labels[0] || "1" }),
      h("span", { text: labels[MAX_SCORE - 1] || String(MAX_SCORE) }),
    );
    const form = h(
      "form",
      {
        class: "rating-form",
        onsubmit: async (event) => {
          event.preventDefault();
          if (this.busy || this.score === null) return;
          this.busy = true;
          send.disabled = true;
          problem.hidden = true;
          try {
            await this.submit(ticketId, { score: this.score, comment: comment.value.trim() || null });
            this.thanked = ticketId;
            this.draw([h("p", { class: "rating-done", role: "status", text: this.t.rateThanks })]);
          } catch (err) {
            if (err && err.code === "already_rated") {
              this.thanked = ticketId;
              this.draw([h("p", { class: "rating-done", role: "status", text: this.t.rateThanks })]);
            } else {
              problem.textContent = this.t.rateFailed;
              problem.hidden = false;
              send.disabled = false;
            }
          } finally {
            this.busy = false;
          }
        },
      },
      h("div", { class: "rating-head" }, h("h2", { class: "rating-title", id: "rating-title", text: this.t.rateTitle }), h("button", { type: "button", class: "rating-later", text: this.t.rateLater, onclick: () => {
        this.dismiss(ticketId);
        this.hide();
      } })),
      h("div", { class: "rating-scores", role: "group", "aria-labelledby": "rating-title" }, buttons),
      legend,
      h("label", { for: "rating-comment", class: "rating-comment-label", text: this.t.rateComment }),
      comment,
      problem,
      h("div", { class: "rating-actions" }, send),
    );
    this.draw([form]);
    this.root.dataset.asking = ticketId;
  }
}

/** The console's summary of a ticket's rating: "★★★★☆ 4/5 · “comment”", or null when unrated. */
export function ratingSummary(ticket) {
  if (!ticket || ticket.rating === null || ticket.rating === undefined) return null;
  const stars = "★".repeat(ticket.rating) + "☆".repeat(MAX_SCORE - ticket.rating);
  return h(
    "p",
    { class: `rating-summary rating-${ticket.rating}` },
    h("span", { class: "rating-stars", "aria-hidden": "true", text: stars }),
    h("span", { class: "rating-text", text: ` Customer rating: ${ticket.rating}/${MAX_SCORE}` }),
    ticket.rating_comment ? h("span", { class: "rating-comment", text: ` · “${ticket.rating_comment}”` }) : null,
  );
}

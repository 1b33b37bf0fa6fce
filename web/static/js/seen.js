// "Seen" under a message, from the room's read cursors (docs/protocol.md, "Read cursors"). Shared
// by the widget (an agent has read the visitor's last message) and the console (the customer has
// read the agents' last public message).

import { h } from "./dom.js";

const STRINGS = { en: "Seen", fr: "Vu", de: "Gesehen", es: "Visto" };

/** The widget's "Seen", in the visitor's language (a site may override it as `seen`). */
export function seenLabel(locale, overrides = {}) {
  if (typeof overrides.seen === "string") return overrides.seen;
  return STRINGS[String(locale || "en").slice(0, 2).toLowerCase()] || STRINGS.en;
}

/**
 * The seq of the last message `mine` accepts, when `cursor` (a read cursor's seq) covers it; else null.
 * @param {import("./room.js").Room} room
 */
export function seenSeq(room, mine, cursor) {
  let last = null;
  for (const message of room.messages.values()) if (mine(message) && (last === null || message.seq > last)) last = message.seq;
  return last !== null && cursor >= last ? last : null;
}

/** Show `label` under the row of `seq` only (null: nowhere). Left alone when already there, so a
 * screen reader hears it once, not on every re-render. */
export function showSeen(list, seq, label) {
  for (const old of list.querySelectorAll(".seen-label")) {
    if (seq === null || old.closest("li").dataset.seq !== String(seq)) old.remove();
  }
  if (seq === null) return;
  const row = list.querySelector(`li[data-seq="${seq}"]`);
  if (!row || row.querySelector(".seen-label")) return;
  row.appendChild(h("div", { class: "seen-label", text: label }));
}

/** Report what this page shows as read, when the reader can actually see it. */
export function pageVisible() {
  return document.visibilityState === "visible";
}

// Console keyboard shortcuts, and the "?" dialog that lists them. Keys act only outside text
// fields (typing "/" or "n" in the composer types it: the composer's own "/" opens canned
// responses), and never with Ctrl, Alt or Cmd held.

import { h } from "./dom.js";

export const SHORTCUTS = [
  { keys: ["j", "↓"], text: "Next conversation in the inbox" },
  { keys: ["k", "↑"], text: "Previous conversation in the inbox" },
  { keys: ["Enter"], text: "Open the selected conversation" },
  { keys: ["r"], text: "Write a reply (focus the composer)" },
  { keys: ["n"], text: "Switch between reply and internal note" },
  { keys: ["/"], text: "Search conversations" },
  { keys: ["Esc"], text: "Leave the search box or close this dialog" },
  { keys: ["?"], text: "Show these shortcuts" },
];

function typingInto(target) {
  if (!(target instanceof Element)) return false;
  if (target.isContentEditable) return true;
  const tag = target.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  if (tag !== "INPUT") return false;
  return !["checkbox", "radio", "button", "submit", "reset"].includes(target.type);
}

function helpDialog() {
  const close = h("button", { type: "button", class: "secondary", text: "Close" });
  const dialog = h(
    "dialog",
    { class: "shortcuts-dialog", "aria-labelledby": "shortcuts-title" },
    h("h2", { id: "shortcuts-title", text: "Keyboard shortcuts" }),
    h(
      "dl",
      { class: "shortcuts-list" },
      SHORTCUTS.map((s) => [
        h("dt", {}, s.keys.map((k, i) => [i ? " or " : null, h("kbd", { text: k })])),
        h("dd", { text: s.text }),
      ]),
    ),
    h("div", { class: "dialog-actions" }, close),
  );
  close.addEventListener("click", () => dialog.close());
  // A click on the backdrop (outside the dialog's box) closes it too.
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close();
  });
  return dialog;
}

/**
 * @param {object} actions
 * @param {(delta: number) => void} actions.move  select the next (1) / previous (-1) inbox row
 * @param {() => void} actions.focusComposer
 * @param {() => void} actions.toggleNote
 * @param {() => void} actions.focusSearch
 */
export function installShortcuts(actions) {
  const dialog = helpDialog();
  document.body.appendChild(dialog);
  let returnFocus = null;
  dialog.addEventListener("close", () => {
    if (returnFocus && returnFocus.isConnected) returnFocus.focus();
    returnFocus = null;
  });

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || dialog.open) return;
    if (typingInto(event.target)) return;
    const inInbox = event.target instanceof Element && event.target.closest(".ticket-list");
    const onPage = event.target === document.body || event.target === document.documentElement;
    let handled = true;
    switch (event.key) {
      case "j":
        actions.move(1);
        break;
      case "k":
        actions.move(-1);
        break;
      case "ArrowDown":
      case "ArrowUp":
        // Arrows keep scrolling the thread (and anything else) unless the inbox has the focus.
        if (!(inInbox || onPage)) return;
        actions.move(event.key === "ArrowDown" ? 1 : -1);
        break;
      case "r":
        actions.focusComposer();
        break;
      case "n":
        actions.toggleNote();
        break;
      case "/":
        actions.focusSearch();
        break;
      case "?":
        returnFocus = document.activeElement;
        dialog.showModal();
        break;
      default:
        handled = false;
    }
    if (handled) event.preventDefault();
  });
  return dialog;
}

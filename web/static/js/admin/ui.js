// Small building blocks the admin sections share: a data table, a labelled field, a form's error
// line, and times. Text goes in as text (dom.js h()), never as HTML.

import { formatTime, h } from "../dom.js";

/** A table with a caption; columns: [{title, cell: (row) => node or text}]. */
export function dataTable({ caption, columns, rows, empty }) {
  if (!rows.length) return h("p", { class: "muted", text: empty || "Nothing yet." });
  return h(
    "div",
    { class: "table-wrap", role: "region", "aria-label": caption, tabindex: "0" },
    h(
      "table",
      { class: "data" },
      h("caption", { class: "sr-only", text: caption }),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", text: c.title })))),
      h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c) => h("td", {}, c.cell(row)))))),
    ),
  );
}

/** <label>Title <input …></label> with an optional hint under it. */
export function field(title, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  const children = [h("label", { for: id, text: title }), input];
  if (hint) {
    const hintId = `${id}-hint`;
    input.setAttribute("aria-describedby", hintId);
    children.push(h("p", { class: "hint", id: hintId, text: hint }));
  }
  return h("div", { class: "field" }, children);
}

/** The message of an API error (the server writes it for people). */
export function errorText(err) {
  return err.message || "Something went wrong";
}

/** A <p role="alert"> that a form fills on failure and clears on success. */
export function errorLine() {
  const el = h("p", { class: "form-error", role: "alert" });
  return {
    el,
    show(err) {
      el.textContent = errorText(err);
    },
    clear() {
      el.textContent = "";
    },
  };
}

export function when(iso) {
  return iso ? h("time", { datetime: iso, title: iso, text: formatTime(iso) }) : "—";
}

/** A read-only text to hand on (a link, a secret shown once), with a Copy button. */
export function copyField(title, value, hint) {
  const input = h("input", { type: "text", readonly: true, value, spellcheck: "false", autocomplete: "off" });
  const copy = h("button", {
    type: "button",
    class: "secondary",
    text: "Copy",
    "aria-label": `Copy ${title.toLowerCase()}`,
    onclick: async () => {
      input.select();
      try {
        await navigator.clipboard.writeText(value);
        copy.textContent = "Copied";
      } catch {
        copy.textContent = "Selected: press Ctrl+C";
      }
    },
  });
  const box = field(title, input, hint);
  box.appendChild(copy);
  return box;
}

// Small building blocks the admin sections share: a data table and its row buttons, a labelled
// field, a form with its error line, checkbox groups, a secret shown once, and times. Text goes in
// as text (dom.js h()), never as HTML.

import { clear, formatTime, h } from "../dom.js";

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

/** A small button in a table row; `label` is its accessible name, which names the row's item. */
export function rowButton(text, label, onclick, kind = "secondary") {
  return h("button", { type: "button", class: kind, text, "aria-label": label, onclick });
}

/**
 * act(done, fn) for a section's row buttons: run fn (its API calls), then toast `done` (when
 * given) and reload the section; a failure is toasted and nothing is reloaded.
 */
export function rowActions(toast, reload) {
  return async function act(done, fn) {
    try {
      await fn();
      if (done) toast(done);
      await reload();
    } catch (err) {
      toast(err.message);
    }
  };
}

/** A form's submit: its error line cleared, then `fn`; a failure is shown in the error line. */
export function onSubmit(form, error, fn) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.clear();
    try {
      await fn();
    } catch (err) {
      error.show(err);
    }
  });
}

/** The form under a section's table: <form class="admin-form"> labelled by its <h2> heading. */
export function adminForm(heading, ...children) {
  return h("form", { class: "admin-form", "aria-labelledby": heading.id }, heading, ...children);
}

/** Fills a <fieldset> with one checkbox per value (once: a reload keeps what is ticked). */
export function fillChecks(box, name, values) {
  if (box.querySelector("input")) return;
  for (const value of values) {
    box.appendChild(h("label", {}, h("input", { type: "checkbox", name, value }), ` ${value}`));
  }
}

/** The values ticked in a fieldset of checkboxes. */
export function checkedValues(box) {
  return [...box.querySelectorAll("input:checked")].map((i) => i.value);
}

/** Shows a secret the server gives only once (a key, a signing secret) in `box`, with what it is. */
export function showOnce(box, text, secret) {
  clear(box);
  box.append(h("p", { text }), h("code", { class: "secret", text: secret }));
  box.hidden = false;
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

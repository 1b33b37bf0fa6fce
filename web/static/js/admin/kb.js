// Admin › Knowledge base (docs/ai.md, docs/web.md): the articles the AI answers from. List,
// view, create, edit and delete; the server re-chunks and re-embeds an article when it is saved,
// so the next question already searches the new text.

import { dataTable, errorLine, field, when } from "./ui.js";

const PAGE = 200;

export async function render(root, { api, h, clear, toast }) {
  const listBox = h("div");
  const viewer = h("section", { class: "kb-article", "aria-labelledby": "kb-view-title", hidden: true });
  let editing = null; // the article being edited, or null for a new one

  async function reload() {
    const data = await api("GET", `/admin/kb/articles?limit=${PAGE}`);
    clear(listBox);
    listBox.append(
      h("p", { class: "muted", text: `${data.total} article${data.total === 1 ? "" : "s"}.` }),
      dataTable({
        caption: "Knowledge-base articles",
        empty: "No articles yet: the AI has nothing to answer from.",
        rows: data.articles,
        columns: [
          { title: "Title", cell: (a) => a.title },
          { title: "Slug", cell: (a) => h("code", { text: a.slug }) },
          { title: "Updated", cell: (a) => when(a.updated_at) },
          {
            title: "Actions",
            cell: (a) =>
              h(
                "div",
                { class: "row-actions" },
                h("button", {
                  type: "button",
                  class: "secondary",
                  text: "View",
                  "aria-label": `View ${a.title}`,
                  onclick: () => show(a.id),
                }),
                h("button", {
                  type: "button",
                  class: "secondary",
                  text: "Edit",
                  "aria-label": `Edit ${a.title}`,
                  onclick: () => edit(a.id),
                }),
                h("button", {
                  type: "button",
                  class: "ghost danger",
                  text: "Delete",
                  "aria-label": `Delete ${a.title}`,
                  onclick: () => remove(a),
                }),
              ),
          },
        ],
      }),
    );
  }

  async function show(id) {
    try {
      const { article } = await api("GET", `/admin/kb/articles/${encodeURIComponent(id)}`);
      clear(viewer);
      viewer.append(
        h("h2", { id: "kb-view-title", text: article.title }),
        h("p", { class: "kb-meta" }, h("code", { text: article.slug }), article.url ? ` · ${article.url}` : ""),
        h("pre", { class: "kb-body", text: article.body }),
      );
      viewer.hidden = false;
    } catch (err) {
      toast(err.message);
    }
  }

  async function edit(id) {
    try {
      const { article } = await api("GET", `/admin/kb/articles/${encodeURIComponent(id)}`);
      editing = article;
      title.value = article.title;
      slug.value = article.slug;
      url.value = article.url || "";
      body.value = article.body;
      heading.textContent = `Edit “${article.title}”`;
      submit.textContent = "Save article";
      cancel.hidden = false;
      form.scrollIntoView({ block: "start" });
      title.focus();
    } catch (err) {
      toast(err.message);
    }
  }

  async function remove(article) {
    if (!window.confirm(`Delete the article “${article.title}”? The AI stops answering from it at once.`)) return;
    try {
      await api("DELETE", `/admin/kb/articles/${encodeURIComponent(article.id)}`);
      if (editing && editing.id === article.id) resetForm();
      viewer.hidden = true;
      toast("Article deleted.");
      await reload();
    } catch (err) {
      toast(err.message);
    }
  }

  const title = h("input", { name: "title", required: true, maxlength: "300" });
  const slug = h("input", { name: "slug", maxlength: "200", pattern: "[a-z0-9_-]+" });
  const url = h("input", { name: "url", type: "url", maxlength: "2000", placeholder: "https://help.example.com/articles/…" });
  const body = h("textarea", { name: "body", required: true, rows: "14" });
  const heading = h("h2", { id: "kb-form-title", text: "New article" });
  const submit = h("button", { type: "submit", class: "primary", text: "Add article" });
  const cancel = h("button", { type: "button", class: "secondary", text: "Cancel", hidden: true, onclick: () => resetForm() });
  const error = errorLine();

  function resetForm() {
    editing = null;
    form.reset();
    error.clear();
    heading.textContent = "New article";
    submit.textContent = "Add article";
    cancel.hidden = true;
  }

  const form = h(
    "form",
    { class: "admin-form", "aria-labelledby": "kb-form-title" },
    heading,
    field("Title", title),
    field("Slug (optional)", slug, "Lower-case words joined by hyphens; made from the title when empty."),
    field("Public page (optional)", url, "Where customers can read the article; the widget links to it."),
    field("Text (Markdown)", body, "Split into sections at “## ” headings: each is searched on its own."),
    error.el,
    h("div", { class: "row-actions" }, submit, cancel),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.clear();
    const payload = { title: title.value.trim(), body: body.value, url: url.value.trim() || null };
    if (slug.value.trim()) payload.slug = slug.value.trim();
    try {
      if (editing) {
        await api("PATCH", `/admin/kb/articles/${encodeURIComponent(editing.id)}`, payload);
        toast("Article saved and re-indexed.");
      } else {
        await api("POST", "/admin/kb/articles", payload);
        toast("Article added and indexed.");
      }
      const wasViewing = editing && !viewer.hidden ? editing.id : null;
      resetForm();
      await reload();
      if (wasViewing) await show(wasViewing);
    } catch (err) {
      error.show(err);
    }
  });

  root.append(listBox, viewer, form);
  await reload();
}

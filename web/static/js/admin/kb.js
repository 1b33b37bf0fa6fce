// Knowledge base (docs/ai.md, docs/web.md): the articles the AI answers from.
// Admins: list, view, create, edit and delete articles (the server re-chunks and re-embeds an
// article when it is saved, so the next question already searches the new text), and review the
// suggestions agents made (publish or reject). Agents: read the articles, suggest a new one or a
// new text for one, and withdraw their own suggestions; the AI never answers from a suggestion.

import { adminForm, dataTable, errorLine, field, onSubmit, rowActions, rowButton, when } from "./ui.js";

const PAGE = 200;

export async function render(root, { api, h, clear, toast, me }) {
  const isAdmin = me.role === "admin";
  const listBox = h("div", { class: "kb-articles" });
  const suggestionsBox = h("section", { class: "kb-suggestions", "aria-labelledby": "kb-suggestions-title" });
  const viewer = h("section", { class: "kb-article", "aria-labelledby": "kb-view-title", hidden: true });
  let editing = null; // the article being edited (admins) or suggested an edit for (agents); null: a new one

  const act = rowActions(toast, () => reload());

  async function reload() {
    const [data, pending] = await Promise.all([
      api("GET", `/kb/articles?limit=${PAGE}`),
      api("GET", "/kb/suggestions"),
    ]);
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
                rowButton("View", `View ${a.title}`, () => showArticle(a.id)),
                rowButton(isAdmin ? "Edit" : "Suggest an edit", `${isAdmin ? "Edit" : "Suggest an edit to"} ${a.title}`, () => edit(a.id)),
                isAdmin ? rowButton("Delete", `Delete ${a.title}`, () => remove(a), "ghost danger") : null,
              ),
          },
        ],
      }),
    );
    renderSuggestions(pending.suggestions);
  }

  function renderSuggestions(rows) {
    clear(suggestionsBox);
    suggestionsBox.append(
      h("h2", { id: "kb-suggestions-title", text: isAdmin ? "Suggestions waiting for review" : "Your suggestions" }),
      dataTable({
        caption: "Suggestions",
        empty: isAdmin ? "No suggestions waiting." : "You have no suggestions waiting for an admin.",
        rows,
        columns: [
          { title: "Title", cell: (s) => s.title },
          { title: "For", cell: (s) => (s.article ? `Edit of “${s.article.title}”` : "New article") },
          ...(isAdmin ? [{ title: "By", cell: (s) => (s.author ? s.author.name : "—") }] : []),
          { title: "Note", cell: (s) => s.note || "—" },
          { title: "Suggested", cell: (s) => when(s.created_at) },
          {
            title: "Actions",
            cell: (s) =>
              h(
                "div",
                { class: "row-actions" },
                rowButton("Read", `Read suggestion ${s.title}`, () =>
                  showText(s.title, s.article ? `Suggested text for ${s.article.slug}` : "New article", s.body),
                ),
                isAdmin
                  ? rowButton(
                      "Publish",
                      `Publish suggestion ${s.title}`,
                      () =>
                        act("Published and indexed.", () =>
                          api("POST", `/admin/kb/suggestions/${encodeURIComponent(s.id)}/publish`, {}),
                        ),
                      "primary",
                    )
                  : null,
                rowButton(
                  isAdmin ? "Reject" : "Withdraw",
                  `${isAdmin ? "Reject" : "Withdraw"} suggestion ${s.title}`,
                  () => {
                    if (!window.confirm(`${isAdmin ? "Reject" : "Withdraw"} the suggestion “${s.title}”?`)) return;
                    act(isAdmin ? "Suggestion rejected." : "Suggestion withdrawn.", () =>
                      api("DELETE", `/kb/suggestions/${encodeURIComponent(s.id)}`),
                    );
                  },
                  "ghost danger",
                ),
              ),
          },
        ],
      }),
    );
  }

  function showText(titleText, meta, bodyText) {
    clear(viewer);
    viewer.append(
      h("h2", { id: "kb-view-title", text: titleText }),
      h("p", { class: "kb-meta" }, meta),
      h("pre", { class: "kb-body", text: bodyText }),
    );
    viewer.hidden = false;
  }

  async function showArticle(id) {
    try {
      const { article } = await api("GET", `/kb/articles/${encodeURIComponent(id)}`);
      showText(article.title, [h("code", { text: article.slug }), article.url ? ` · ${article.url}` : ""], article.body);
    } catch (err) {
      toast(err.message);
    }
  }

  async function edit(id) {
    try {
      const { article } = await api("GET", `/kb/articles/${encodeURIComponent(id)}`);
      editing = article;
      title.value = article.title;
      slug.value = article.slug;
      url.value = article.url || "";
      body.value = article.body;
      note.value = "";
      heading.textContent = isAdmin ? `Edit “${article.title}”` : `Suggest an edit to “${article.title}”`;
      submit.textContent = isAdmin ? "Save article" : "Send suggestion";
      cancel.hidden = false;
      form.scrollIntoView({ block: "start" });
      title.focus();
    } catch (err) {
      toast(err.message);
    }
  }

  async function remove(article) {
    if (!window.confirm(`Delete the article “${article.title}”? The AI stops answering from it at once.`)) return;
    await act("Article deleted.", async () => {
      await api("DELETE", `/admin/kb/articles/${encodeURIComponent(article.id)}`);
      if (editing && editing.id === article.id) resetForm();
      viewer.hidden = true;
    });
  }

  const title = h("input", { name: "title", required: true, maxlength: "300" });
  const slug = h("input", { name: "slug", maxlength: "200", pattern: "[a-z0-9_-]+" });
  const url = h("input", { name: "url", type: "url", maxlength: "2000", placeholder: "https://help.example.com/articles/…" });
  const body = h("textarea", { name: "body", required: true, rows: "14" });
  const note = h("textarea", { name: "note", rows: "2", maxlength: "2000" });
  const newHeading = isAdmin ? "New article" : "Suggest a new article";
  const newSubmit = isAdmin ? "Add article" : "Send suggestion";
  const heading = h("h2", { id: "kb-form-title", text: newHeading });
  const submit = h("button", { type: "submit", class: "primary", text: newSubmit });
  const cancel = h("button", { type: "button", class: "secondary", text: "Cancel", hidden: true, onclick: () => resetForm() });
  const error = errorLine();

  function resetForm() {
    editing = null;
    form.reset();
    error.clear();
    heading.textContent = newHeading;
    submit.textContent = newSubmit;
    cancel.hidden = true;
  }

  const form = adminForm(
    heading,
    isAdmin ? null : h("p", { class: "hint", text: "An admin reviews it before the AI answers from it." }),
    field("Title", title),
    isAdmin ? field("Slug (optional)", slug, "Lower-case words joined by hyphens; made from the title when empty.") : null,
    field("Public page (optional)", url, "Where customers can read the article; the widget links to it."),
    field("Text (Markdown)", body, "Split into sections at “## ” headings: each is searched on its own."),
    isAdmin ? null : field("Note for the admins (optional)", note, "Why, or where the facts come from."),
    error.el,
    h("div", { class: "row-actions" }, submit, cancel),
  );
  onSubmit(form, error, async () => {
    const payload = { title: title.value.trim(), body: body.value, url: url.value.trim() || null };
    if (!isAdmin) {
      if (editing) payload.article_id = editing.id;
      if (note.value.trim()) payload.note = note.value.trim();
      await api("POST", "/kb/suggestions", payload);
      toast("Suggestion sent: an admin will review it.");
    } else if (editing) {
      if (slug.value.trim()) payload.slug = slug.value.trim();
      await api("PATCH", `/admin/kb/articles/${encodeURIComponent(editing.id)}`, payload);
      toast("Article saved and re-indexed.");
    } else {
      if (slug.value.trim()) payload.slug = slug.value.trim();
      await api("POST", "/admin/kb/articles", payload);
      toast("Article added and indexed.");
    }
    const wasViewing = isAdmin && editing && !viewer.hidden ? editing.id : null;
    resetForm();
    await reload();
    if (wasViewing) await showArticle(wasViewing);
  });

  root.append(listBox, suggestionsBox, viewer, form);
  await reload();
}

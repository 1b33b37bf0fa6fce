// Admin › Agents (REST /admin/users, docs/security.md): the team's accounts; invite one by email (or
// add one with a password), re-send an invitation, change a role, disable and enable, set a new
// password. Disabling or a role change signs the person out everywhere at once (the server ends
// their sessions and closes their sockets).

import { adminForm, copyField, dataTable, errorLine, field, onSubmit, rowButton, when } from "./ui.js";

const ROLE_LABELS = { agent: "Agent", admin: "Admin", customer: "Customer" };
const SHOWN = { staff: ["agent", "admin"], agent: ["agent"], admin: ["admin"], customer: ["customer"] };

export async function render(root, { api, h, clear, toast, me }) {
  const listBox = h("div");
  const more = h("button", { type: "button", class: "secondary", text: "Load more", hidden: true });
  const show = h(
    "select",
    { name: "show" },
    h("option", { value: "staff", text: "Agents and admins" }),
    h("option", { value: "agent", text: "Agents" }),
    h("option", { value: "admin", text: "Admins" }),
    h("option", { value: "customer", text: "Customers" }),
  );
  const search = h("input", { type: "search", name: "email", autocomplete: "off", placeholder: "name@example.com" });
  let users = [];
  let cursors = {}; // role -> next_after (null when done)

  function person(u) {
    return u.name || u.email;
  }

  async function loadPage(role, after) {
    const query = new URLSearchParams({ role, limit: "100" });
    if (after) query.set("after", after);
    if (search.value.trim()) query.set("email", search.value.trim());
    return api("GET", `/admin/users?${query}`);
  }

  async function reload({ append = false } = {}) {
    const roles = SHOWN[show.value];
    if (!append) {
      users = [];
      cursors = {};
    }
    for (const role of roles) {
      if (append && !cursors[role]) continue;
      const page = await loadPage(role, append ? cursors[role] : null);
      users.push(...page.users);
      cursors[role] = page.next_after;
    }
    users.sort((a, b) => person(a).localeCompare(person(b)));
    more.hidden = !Object.values(cursors).some(Boolean);
    draw();
  }

  async function act(promise, done) {
    try {
      await promise;
      toast(done);
      await reload();
    } catch (err) {
      toast(err.message);
      await reload();
    }
  }

  function roleCell(u) {
    if (u.id === me.id) return ROLE_LABELS[u.role] || u.role;
    const select = h(
      "select",
      { "aria-label": `Role of ${person(u)}` },
      ["agent", "admin", "customer"].map((r) => h("option", { value: r, text: ROLE_LABELS[r], selected: r === u.role })),
    );
    select.addEventListener("change", () => {
      const role = select.value;
      if (!window.confirm(`Make ${person(u)} ${ROLE_LABELS[role].toLowerCase()}? They are signed out and sign in again.`)) {
        select.value = u.role;
        return;
      }
      act(api("POST", `/admin/users/${encodeURIComponent(u.id)}/role`, { role }), `${person(u)} is now ${ROLE_LABELS[role].toLowerCase()}.`);
    });
    return select;
  }

  function statusBadge(u) {
    if (u.status === "disabled") return h("span", { class: "badge off", text: "Disabled" });
    if (u.status === "invited") return h("span", { class: "badge invited", text: "Invited", title: `Invited ${u.invited_at}` });
    return h("span", { class: "badge", text: "Active" });
  }

  function actions(u) {
    const buttons = [];
    if (u.status === "invited") {
      buttons.push(
        h("button", {
          type: "button",
          class: "secondary",
          text: "Re-send invitation",
          "aria-label": `Re-send invitation to ${person(u)}`,
          onclick: () => resendInvitation(u),
        }),
      );
    }
    if (u.id !== me.id) {
      buttons.push(
        u.disabled
          ? rowButton("Enable", `Enable ${person(u)}`, () =>
              act(api("POST", `/admin/users/${encodeURIComponent(u.id)}/enable`), `${person(u)} can sign in again.`),
            )
          : rowButton("Disable", `Disable ${person(u)}`, () => {
              if (!window.confirm(`Disable ${person(u)}? They are signed out everywhere at once.`)) return;
              act(api("POST", `/admin/users/${encodeURIComponent(u.id)}/disable`), `${person(u)} is disabled and signed out.`);
            }),
      );
    }
    buttons.push(rowButton("Set password", `Set password for ${person(u)}`, () => openReset(u)));
    return h("div", { class: "row-actions" }, buttons);
  }

  function draw() {
    clear(listBox);
    listBox.appendChild(
      dataTable({
        caption: "Accounts",
        empty: "No accounts match.",
        rows: users,
        columns: [
          { title: "Name", cell: (u) => (u.id === me.id ? `${person(u)} (you)` : person(u)) },
          { title: "Email", cell: (u) => u.email },
          { title: "Role", cell: roleCell },
          { title: "Status", cell: statusBadge },
          { title: "Since", cell: (u) => when(u.created_at) },
          { title: "Actions", cell: actions },
        ],
      }),
    );
  }

  // ---- set a password for someone --------------------------------------------------------------
  const resetTitle = h("h2", { id: "reset-title", tabindex: "-1" });
  const resetPassword = h("input", { type: "password", name: "password", autocomplete: "new-password", minlength: "8", required: true });
  const resetError = errorLine();
  let resetting = null;
  const resetForm = adminForm(
    resetTitle,
    field("New password", resetPassword, "At least 8 characters. They are signed out everywhere; tell them the new password."),
    resetError.el,
    h(
      "div",
      { class: "row-actions" },
      h("button", { type: "submit", class: "primary", text: "Set password" }),
      h("button", { type: "button", class: "ghost", text: "Cancel", onclick: () => (resetForm.hidden = true) }),
    ),
  );
  resetForm.hidden = true;
  function openReset(u) {
    resetting = u;
    resetTitle.textContent = `New password for ${person(u)}`;
    resetForm.reset();
    resetError.clear();
    resetForm.hidden = false;
    resetPassword.focus();
  }
  onSubmit(resetForm, resetError, async () => {
    await api("POST", `/admin/users/${encodeURIComponent(resetting.id)}/password`, { password: resetPassword.value });
    resetForm.hidden = true;
    toast(`New password set for ${person(resetting)}; they are signed out everywhere.`);
  });

  // ---- invitations --------------------------------------------------------------------------------
  // With email on, the link goes to the invitee only; without it, the server answers with the link
  // and the admin passes it on (services/invitations.py).
  const linkBox = h("div", { class: "admin-form invite-link", role: "status", hidden: true });
  function delivered(user, invitation) {
    clear(linkBox);
    if (invitation.delivery === "email") {
      linkBox.hidden = true;
      toast(`Invitation sent to ${invitation.email}.`);
      return;
    }
    linkBox.append(
      h("h2", { text: `Invitation link for ${person(user)}` }),
      h("p", { text: "Email is not set up on this server, so nobody was emailed: send this link to them yourself." }),
      copyField("Invitation link", invitation.link, `It works once, until ${new Date(invitation.expires_at).toLocaleString()}. Anyone with it can set this account's password.`),
      h("button", { type: "button", class: "ghost", text: "Done", onclick: () => ((linkBox.hidden = true), clear(linkBox)) }),
    );
    linkBox.hidden = false;
    linkBox.querySelector("input").focus();
  }

  async function resendInvitation(u) {
    if (!window.confirm(`Send ${person(u)} a new invitation? Links sent before stop working.`)) return;
    try {
      const { user, invitation } = await api("POST", `/admin/users/${encodeURIComponent(u.id)}/invitation`);
      delivered(user, invitation);
    } catch (err) {
      toast(err.message);
    }
    await reload();
  }

  const inviteName = h("input", { name: "name", maxlength: "100", autocomplete: "off" });
  const inviteEmail = h("input", { name: "email", type: "email", required: true, maxlength: "254", autocomplete: "off" });
  const inviteRole = h("select", { name: "role" }, h("option", { value: "agent", text: "Agent" }), h("option", { value: "admin", text: "Admin" }));
  const inviteError = errorLine();
  const inviteForm = h(
    "form",
    { class: "admin-form", "aria-labelledby": "invite-title" },
    h("h2", { id: "invite-title", text: "Invite a team member" }),
    field("Name", inviteName),
    field("Email", inviteEmail, "We email them a link to choose their password; they sign in to the console with this address."),
    field("Role", inviteRole, "Admins also manage the team, API keys and webhooks."),
    inviteError.el,
    h("button", { type: "submit", class: "primary", text: "Invite" }),
  );
  inviteForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    inviteError.clear();
    try {
      const { user, invitation } = await api("POST", "/admin/invitations", {
        name: inviteName.value.trim(),
        email: inviteEmail.value.trim(),
        role: inviteRole.value,
      });
      inviteForm.reset();
      delivered(user, invitation);
      await reload();
    } catch (err) {
      inviteError.show(err);
    }
  });

  // ---- add a team member with a password -----------------------------------------------------------
  const name = h("input", { name: "name", maxlength: "100", autocomplete: "off" });
  const email = h("input", { name: "email", type: "email", required: true, maxlength: "254", autocomplete: "off" });
  const role = h("select", { name: "role" }, h("option", { value: "agent", text: "Agent" }), h("option", { value: "admin", text: "Admin" }));
  const password = h("input", { name: "password", type: "password", required: true, minlength: "8", autocomplete: "new-password" });
  const error = errorLine();
  const form = adminForm(
    h("h2", { id: "new-agent-title", text: "Or add a team member with a password" }),
    field("Name", name),
    field("Email", email, "They sign in to the console with it."),
    field("Role", role, "Admins also manage the team, API keys and webhooks."),
    field("First password", password, "At least 8 characters. Give it to them; they change it on their Account page."),
    error.el,
    h("button", { type: "submit", class: "primary", text: "Add" }),
  );
  onSubmit(form, error, async () => {
    const { user } = await api("POST", "/admin/users", {
      name: name.value.trim(),
      email: email.value.trim(),
      role: role.value,
      password: password.value,
    });
    form.reset();
    toast(`${person(user)} can now sign in.`);
    await reload();
  });

  const filters = h("form", { class: "admin-filters", role: "search", "aria-label": "Find accounts" }, field("Show", show), field("Email starts with", search));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    reload();
  });
  show.addEventListener("change", () => reload());
  search.addEventListener("input", () => {
    clearTimeout(search.timer);
    search.timer = setTimeout(() => reload(), 250);
  });
  more.addEventListener("click", () => reload({ append: true }));

  root.append(filters, resetForm, linkBox, listBox, more, inviteForm, form);
  await reload();
  root.dataset.sectionReady = "true";
}

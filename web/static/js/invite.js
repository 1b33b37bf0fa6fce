// The invitation page (/console/invite#token=...): the link's token is in the URL's fragment, which
// the browser never sends to a server; copy it into the form, then drop it from the address bar
// (and so from the history) so that it does not linger once used.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("invite-form");
  const input = document.getElementById("invite-token");
  if (!form || !input) return;
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const token = fragment.get("token");
  if (token) {
    input.value = token;
    window.history.replaceState(null, "", window.location.pathname);
  }
  if (!input.value) {
    // Opened without a link (or the link lost its fragment): say so instead of a form that cannot work.
    document.getElementById("invite-no-token").hidden = false;
    form.hidden = true;
  }
});

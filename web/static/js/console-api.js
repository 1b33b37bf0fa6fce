// REST from console pages: a short-lived bearer token (POST /console/api/token with the page's
// CSRF token and the session cookie), fetched once and again when it expires.

import { apiError } from "./room.js";

export function consoleApi(csrfToken) {
  let token = null;
  let pending = null;

  async function fetchToken() {
    const response = await fetch("/console/api/token", {
      method: "POST",
      headers: { "X-CSRF-Token": csrfToken },
      credentials: "same-origin",
    });
    if (response.status === 401 || response.status === 403) {
      // The session ended (logged out elsewhere, disabled, expired): back to the login page.
      window.location.assign("/console/login");
      throw await apiError(response);
    }
    if (!response.ok) throw await apiError(response);
    token = (await response.json()).access_token;
    return token;
  }

  function getToken(force = false) {
    if (token && !force) return Promise.resolve(token);
    if (!pending) pending = fetchToken().finally(() => (pending = null));
    return pending;
  }

  /** api("GET", "/admin/users") or api("POST", "/admin/api-keys", {name}): the parsed JSON body
   * (null for 204), or an Error with .status, .code and .message from the error body. */
  async function api(method, path, body) {
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const headers = { Authorization: `Bearer ${await getToken(attempt > 0)}` };
      const init = { method, headers };
      if (body !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      const response = await fetch(path, init);
      if (response.status === 401 && attempt === 0) continue; // the token expired: get a new one
      if (!response.ok) throw await apiError(response);
      return response.status === 204 ? null : response.json();
    }
    throw new Error("unreachable");
  }

  return { api, getToken };
}

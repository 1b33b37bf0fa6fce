// Attachments in the widget and the console: the composer's paper-clip, drag-and-drop and pasted
// screenshots (AttachmentTray: each file uploads at once, with progress, a reason when refused, and
// a retry), and a message's files under its bubble (AttachmentViewer: images as thumbnails that
// open full size, other files as named download links). docs/web.md, "Attachments".
//
// Files are fetched with the caller's bearer token (GET /attachments/{id} needs it; an <img src>
// could not send it): images become data: URLs (the pages' CSP allows data: images, not blob:),
// downloads a short-lived blob: URL behind an <a download>. All names go in as text (dom.js).

import { h } from "./dom.js";

const STRINGS = {
  en: {
    attach: "Attach a file",
    uploading: "Uploading {percent}%",
    uploaded: "Ready to send",
    failed: "Not sent: {reason}",
    networkError: "the connection failed",
    retry: "Retry",
    remove: "Remove",
    openImage: "Open image full size",
    download: "Download",
    closeImage: "Close",
    unavailable: "File unavailable",
    attachments: "Files to send",
    screenshot: "screenshot",
  },
  fr: {
    attach: "Joindre un fichier",
    uploading: "Envoi {percent} %",
    uploaded: "Prêt à envoyer",
    failed: "Non envoyé : {reason}",
    networkError: "la connexion a échoué",
    retry: "Réessayer",
    remove: "Retirer",
    openImage: "Ouvrir l'image en grand",
    download: "Télécharger",
    closeImage: "Fermer",
    unavailable: "Fichier indisponible",
    attachments: "Fichiers à envoyer",
    screenshot: "capture",
  },
  de: {
    attach: "Datei anhängen",
    uploading: "Wird hochgeladen: {percent} %",
    uploaded: "Bereit zum Senden",
    failed: "Nicht gesendet: {reason}",
    networkError: "die Verbindung ist fehlgeschlagen",
    retry: "Erneut versuchen",
    remove: "Entfernen",
    openImage: "Bild in voller Größe öffnen",
    download: "Herunterladen",
    closeImage: "Schließen",
    unavailable: "Datei nicht verfügbar",
    attachments: "Zu sendende Dateien",
    screenshot: "bildschirmfoto",
  },
  es: {
    attach: "Adjuntar un archivo",
    uploading: "Subiendo {percent} %",
    uploaded: "Listo para enviar",
    failed: "No enviado: {reason}",
    networkError: "falló la conexión",
    retry: "Reintentar",
    remove: "Quitar",
    openImage: "Abrir la imagen a tamaño completo",
    download: "Descargar",
    closeImage: "Cerrar",
    unavailable: "Archivo no disponible",
    attachments: "Archivos para enviar",
    screenshot: "captura",
  },
};

const IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);
// A hint for the file picker only: the server decides from the bytes.
const ACCEPT = "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain,.txt,.csv,.doc,.docx,.xls,.xlsx,.ppt,.pptx,.odt,.ods,.odp";

export function attachmentStrings(locale, overrides = {}) {
  const base = STRINGS[String(locale || "en").slice(0, 2).toLowerCase()] || STRINGS.en;
  const out = { ...STRINGS.en, ...base };
  for (const key of Object.keys(STRINGS.en)) if (typeof overrides[key] === "string") out[key] = overrides[key];
  return out;
}

function fill(template, values) {
  return String(template).replace(/\{(\w+)\}/g, (match, key) => (key in values ? String(values[key]) : match));
}

export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

function icon(d, size) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", d);
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "currentColor");
  path.setAttribute("stroke-width", "2");
  path.setAttribute("stroke-linecap", "round");
  path.setAttribute("stroke-linejoin", "round");
  svg.appendChild(path);
  return svg;
}

const clipIcon = () => icon("M16.5 6.5l-8 8a2.1 2.1 0 003 3l8.5-8.5a4 4 0 00-5.7-5.7L5.6 11.9a6 6 0 008.5 8.5l6.4-6.4", 20);
const fileIcon = () => icon("M14 3H6a1 1 0 00-1 1v16a1 1 0 001 1h12a1 1 0 001-1V8zM14 3v5h5M9 13h6M9 17h6", 18);

// ---- showing a message's files ----------------------------------------------------------------

export class AttachmentViewer {
  /**
   * @param {object} options
   * @param {() => Promise<object>} options.authHeaders  headers for GET /attachments/{id}
   * @param {object} options.strings  from attachmentStrings()
   */
  constructor({ authHeaders, strings }) {
    this.authHeaders = authHeaders;
    this.t = strings;
    this.images = new Map(); // url -> Promise<data: URL>; a redraw reuses what was fetched
  }

  async fetchBlob(url) {
    const response = await fetch(url, { headers: await this.authHeaders() });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.blob();
  }

  imageSource(url) {
    if (!this.images.has(url)) {
      const loading = this.fetchBlob(url).then(
        (blob) =>
          new Promise((resolve, reject) => {
            const reader = new FileReader();
            reader.onload = () => resolve(reader.result);
            reader.onerror = () => reject(reader.error);
            reader.readAsDataURL(blob);
          }),
      );
      loading.catch(() => this.images.delete(url)); // try again on the next redraw
      this.images.set(url, loading);
    }
    return this.images.get(url);
  }

  /** The files of a message, or null when it has none. */
  render(attachments) {
    if (!Array.isArray(attachments) || attachments.length === 0) return null;
    return h("div", { class: "attachments" }, attachments.map((file) => (IMAGE_TYPES.has(file.content_type) ? this.imageItem(file) : this.fileItem(file))));
  }

  imageItem(file) {
    const img = h("img", { class: "attachment-image", alt: file.filename });
    const button = h("button", {
      type: "button",
      class: "attachment-thumb",
      title: file.filename,
      "aria-label": `${this.t.openImage}: ${file.filename}`,
      dataset: { attachmentId: file.id },
      onclick: () => this.openFull(file, button),
    }, img);
    this.imageSource(file.url).then(
      (src) => {
        img.src = src;
      },
      () => {
        button.replaceWith(h("span", { class: "attachment-missing", text: `${file.filename} (${this.t.unavailable})` }));
      },
    );
    return button;
  }

  fileItem(file) {
    return h(
      "a",
      {
        class: "attachment-file",
        href: file.url,
        download: file.filename,
        dataset: { attachmentId: file.id },
        "aria-label": `${this.t.download} ${file.filename} (${formatSize(file.size)})`,
        onclick: (event) => {
          event.preventDefault();
          this.download(file, event.currentTarget);
        },
      },
      h("span", { class: "attachment-icon" }, fileIcon()),
      h("span", { class: "attachment-name", text: file.filename }),
      h("span", { class: "attachment-size", text: formatSize(file.size) }),
    );
  }

  async download(file, link) {
    try {
      const blob = await this.fetchBlob(file.url);
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: file.filename, hidden: true });
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (err) {
      link.classList.add("attachment-broken");
      link.title = this.t.unavailable;
    }
  }

  async openFull(file, opener) {
    let src;
    try {
      src = await this.imageSource(file.url);
    } catch (err) {
      return;
    }
    const close = () => {
      overlay.remove();
      document.removeEventListener("keydown", onKey, true);
      opener.focus();
    };
    const onKey = (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        close();
      }
    };
    const closeButton = h("button", { type: "button", class: "lightbox-close", "aria-label": this.t.closeImage, text: "×", onclick: close });
    const overlay = h(
      "div",
      { class: "attachment-lightbox", role: "dialog", "aria-modal": "true", "aria-label": file.filename, onclick: (event) => event.target === overlay && close() },
      h("img", { class: "lightbox-image", src, alt: file.filename }),
      closeButton,
    );
    document.addEventListener("keydown", onKey, true);
    document.body.appendChild(overlay);
    closeButton.focus();
  }
}

/**
 * Draw each message's files under its bubble, on an existing Thread (thread.js): wraps its
 * messageRow and drawPending, so thread.js itself needs no change. A message with files and no
 * text shows no empty bubble.
 */
export function withAttachments(thread, viewer) {
  const messageRow = thread.messageRow.bind(thread);
  thread.messageRow = (message) => {
    const row = messageRow(message);
    addFiles(row, message.body, viewer.render(message.attachments));
    return row;
  };
  const drawPending = thread.drawPending.bind(thread);
  thread.drawPending = (entries) => {
    drawPending(entries);
    for (const entry of entries) {
      if (!entry.attachments || !entry.attachments.length) continue;
      const row = Array.from(thread.list.querySelectorAll("li.msg-pending")).find((li) => li.dataset.clientId === entry.client_id);
      if (row) {
        const names = h("div", { class: "attachments attachments-pending" }, entry.attachments.map((file) => h("span", { class: "attachment-file", text: file.filename })));
        addFiles(row, entry.body, names);
      }
    }
  };
  return thread;
}

function addFiles(row, body, node) {
  if (!node) return;
  const bubble = row.querySelector(".bubble");
  if (bubble && !body) bubble.hidden = true;
  row.insertBefore(node, row.querySelector(".meta"));
}

// ---- the composer: choosing, uploading, retrying ----------------------------------------------

let nextItemId = 1;

export class AttachmentTray {
  /**
   * @param {object} options
   * @param {HTMLFormElement} options.form  the composer; the tray goes just above it
   * @param {HTMLElement} options.input  its textarea: screenshots pasted here are attached
   * @param {HTMLElement} options.buttonBefore  the paper-clip button goes before this element
   * @param {HTMLElement[]} options.dropTargets  where files may be dropped
   * @param {() => Promise<string>} options.ticketId  the ticket to upload into (may create it)
   * @param {(retry: boolean) => Promise<object>} options.authHeaders  Authorization (fresh when retry)
   * @param {object} options.strings  from attachmentStrings()
   */
  constructor({ form, input, buttonBefore, dropTargets, ticketId, authHeaders, strings }) {
    this.t = strings;
    this.ticketId = ticketId;
    this.authHeaders = authHeaders;
    this.items = [];
    this.picker = h("input", { type: "file", multiple: true, accept: ACCEPT, hidden: true, class: "attachment-picker", tabindex: "-1", "aria-hidden": "true" });
    this.button = h("button", { type: "button", class: "attach-button", "aria-label": this.t.attach, title: this.t.attach, onclick: () => this.picker.click() }, clipIcon());
    this.list = h("ul", { class: "attachment-tray", "aria-label": this.t.attachments, hidden: true });
    this.picker.addEventListener("change", () => {
      this.add(Array.from(this.picker.files || []));
      this.picker.value = "";
    });
    buttonBefore.parentNode.insertBefore(this.button, buttonBefore);
    form.appendChild(this.picker);
    form.parentNode.insertBefore(this.list, form);
    input.addEventListener("paste", (event) => {
      const files = Array.from((event.clipboardData && event.clipboardData.files) || []);
      if (!files.length) return;
      event.preventDefault();
      this.add(files.map((file) => this.named(file)));
    });
    for (const target of dropTargets) {
      target.addEventListener("dragover", (event) => {
        if (!event.dataTransfer || !Array.from(event.dataTransfer.types || []).includes("Files")) return;
        event.preventDefault();
        target.classList.add("drag-over");
      });
      target.addEventListener("dragleave", () => target.classList.remove("drag-over"));
      target.addEventListener("drop", (event) => {
        target.classList.remove("drag-over");
        const files = Array.from((event.dataTransfer && event.dataTransfer.files) || []);
        if (!files.length) return;
        event.preventDefault();
        this.add(files);
      });
    }
  }

  /** A pasted screenshot arrives as "image.png": give it a name worth keeping. */
  named(file) {
    if (file.name && file.name !== "image.png") return file;
    const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
    const ext = (file.type.split("/")[1] || "png").replace("jpeg", "jpg");
    return new File([file], `${this.t.screenshot}-${stamp}.${ext}`, { type: file.type });
  }

  add(files) {
    for (const file of files) {
      const item = { id: nextItemId++, file, state: "uploading", progress: 0, error: "", attachment: null, xhr: null, done: null };
      this.items.push(item);
      this.start(item);
    }
    this.render();
  }

  start(item) {
    item.state = "uploading";
    item.progress = 0;
    item.error = "";
    item.done = this.upload(item, false).then(
      (attachment) => {
        item.state = "done";
        item.attachment = attachment;
      },
      (err) => {
        if (err && err.name === "AbortError") return;
        item.state = "failed";
        item.error = err.message || this.t.networkError;
      },
    ).finally(() => this.render());
    this.render();
  }

  async upload(item, retried) {
    const ticketId = await this.ticketId();
    const headers = await this.authHeaders(retried);
    const result = await new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      item.xhr = xhr;
      xhr.open("POST", `/tickets/${encodeURIComponent(ticketId)}/attachments`);
      for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
      xhr.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable) return;
        item.progress = Math.min(99, Math.round((event.loaded / event.total) * 100));
        this.renderProgress(item);
      });
      xhr.addEventListener("load", () => resolve({ status: xhr.status, text: xhr.responseText }));
      xhr.addEventListener("error", () => reject(new Error(this.t.networkError)));
      xhr.addEventListener("abort", () => reject(Object.assign(new Error("aborted"), { name: "AbortError" })));
      const body = new FormData();
      body.append("file", item.file, item.file.name);
      xhr.send(body);
    });
    item.xhr = null;
    if (result.status === 401 && !retried) return this.upload(item, true); // the token expired
    let data = null;
    try {
      data = JSON.parse(result.text);
    } catch (err) {
      data = null;
    }
    if (result.status === 201 && data && data.attachment) return data.attachment;
    const message = (data && data.error && data.error.message) || `HTTP ${result.status}`;
    throw new Error(message);
  }

  remove(item) {
    if (item.xhr) item.xhr.abort();
    this.items = this.items.filter((other) => other !== item);
    this.render();
  }

  get busy() {
    return this.items.some((item) => item.state === "uploading");
  }

  /** Wait for uploads still running, then hand over (and take out of the tray) the uploaded files;
   * failed ones stay, with their reason and a retry button. */
  async takeReady() {
    await Promise.all(this.items.map((item) => item.done));
    const ready = this.items.filter((item) => item.state === "done");
    this.items = this.items.filter((item) => item.state !== "done");
    this.render();
    return ready.map((item) => item.attachment);
  }

  renderProgress(item) {
    const row = this.list.querySelector(`li[data-item="${item.id}"]`);
    if (!row) return;
    const bar = row.querySelector("progress");
    if (bar) bar.value = item.progress;
    const status = row.querySelector(".tray-status");
    if (status) status.textContent = fill(this.t.uploading, { percent: item.progress });
  }

  render() {
    while (this.list.firstChild) this.list.removeChild(this.list.firstChild);
    this.list.hidden = this.items.length === 0;
    for (const item of this.items) {
      const status =
        item.state === "uploading"
          ? fill(this.t.uploading, { percent: item.progress })
          : item.state === "failed"
            ? fill(this.t.failed, { reason: item.error })
            : this.t.uploaded;
      this.list.appendChild(
        h(
          "li",
          { class: `tray-item tray-${item.state}`, dataset: { item: String(item.id) } },
          h("span", { class: "tray-name", text: item.file.name }),
          h("span", { class: "tray-size", text: formatSize(item.file.size) }),
          item.state === "uploading" ? h("progress", { max: "100", value: String(item.progress), "aria-label": `${item.file.name}: ${status}` }) : null,
          h("span", { class: "tray-status", role: item.state === "failed" ? "alert" : null, text: status }),
          item.state === "failed" ? h("button", { type: "button", class: "tray-retry", text: this.t.retry, onclick: () => this.start(item) }) : null,
          h("button", { type: "button", class: "tray-remove", "aria-label": `${this.t.remove} ${item.file.name}`, text: "×", onclick: () => this.remove(item) }),
        ),
      );
    }
  }
}

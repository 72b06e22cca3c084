/**
 * attachments.js — files in chat messages (protocol: chat/protocol.py, docs/protocols/chat.md).
 *
 *   renderAttachments(li, attachments)   images as thumbnails that open the full image, other
 *                                        files as a download link with name and size
 *   new AttachmentTray({tray, button, input, dropZone, pasteTarget, uploadUrl, maxBytes,
 *                       csrfToken, onChange, onError})
 *     .addFiles(files)  upload each (POST, multipart, CSRF header) showing its progress
 *     .ready()          the entries of the finished uploads, to send with the next message
 *     .busy()           whether an upload is still running
 *     .clear()          forget the tray (after sending)
 *
 * The attach button, dropping files on the composer and pasting an image all end in addFiles.
 * Names and sizes are set with textContent: nothing a user chose is parsed as HTML.
 */

/** `bytes` for people: "512 bytes", "48 KB", "3.2 MB". */
export function formatSize(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toPrecision(2).replace(/\.0$/, "")} MB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${bytes} bytes`;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The thumbnail's box: the image's own proportions, at most the thumbnail's size. */
function thumbnailSize(attachment, side = 320) {
  const { width, height } = attachment;
  if (!width || !height) return null;
  const scale = Math.min(1, side / Math.max(width, height));
  return { width: Math.round(width * scale), height: Math.round(height * scale) };
}

function imageLink(attachment) {
  const link = element("a", "attachment-image");
  link.href = attachment.url;
  link.target = "_blank";
  link.rel = "noopener";
  link.title = `${attachment.name} (${formatSize(attachment.size)})`;
  const image = element("img");
  image.src = attachment.thumbnail_url;
  image.alt = attachment.name;
  image.loading = "lazy";
  const size = thumbnailSize(attachment);
  if (size) {
    image.width = size.width;
    image.height = size.height;
  }
  link.append(image);
  return link;
}

function fileLink(attachment) {
  const link = element("a", "attachment-file");
  link.href = attachment.url;
  link.download = attachment.name;
  link.append(
    element("span", "attachment-icon", "📄"),
    element("span", "attachment-name", attachment.name),
    element("span", "attachment-size", formatSize(attachment.size)),
  );
  return link;
}

/** Show a message's attachments under its text (replacing any shown before). */
export function renderAttachments(li, attachments) {
  li.querySelector(".message-attachments")?.remove();
  if (!attachments || attachments.length === 0) return;
  const box = element("div", "message-attachments");
  for (const attachment of attachments) {
    box.append(attachment.thumbnail_url ? imageLink(attachment) : fileLink(attachment));
  }
  li.querySelector(".message-body").append(box);
}


/** The composer's pending files: each uploads at once and shows its progress until sent. */
export class AttachmentTray {
  constructor({ tray, button, input, dropZone, pasteTarget, uploadUrl, maxBytes, csrfToken, onChange, onError }) {
    this.tray = tray;
    this.csrfToken = csrfToken;
    this.uploadUrl = uploadUrl;
    this.maxBytes = maxBytes;
    this.onChange = onChange || (() => {});
    this.onError = onError || (() => {});
    this.items = []; // {file, chip, request, entry, failed}
    button.addEventListener("click", () => input.click());
    input.addEventListener("change", () => {
      this.addFiles(input.files);
      input.value = "";
    });
    dropZone.addEventListener("dragover", (event) => {
      if (![...event.dataTransfer.types].includes("Files")) return;
      event.preventDefault();
      dropZone.classList.add("is-dropping");
    });
    dropZone.addEventListener("dragleave", () => dropZone.classList.remove("is-dropping"));
    dropZone.addEventListener("drop", (event) => {
      dropZone.classList.remove("is-dropping");
      if (!event.dataTransfer.files.length) return;
      event.preventDefault();
      this.addFiles(event.dataTransfer.files);
    });
    pasteTarget.addEventListener("paste", (event) => {
      const files = event.clipboardData ? [...event.clipboardData.files] : [];
      if (!files.length) return;
      event.preventDefault();
      this.addFiles(files);
    });
  }

  addFiles(files) {
    for (const file of files) this.upload(file);
  }

  ready() {
    return this.items.filter((item) => item.entry).map((item) => item.entry);
  }

  busy() {
    return this.items.some((item) => !item.entry && !item.failed);
  }

  clear() {
    for (const item of this.items) item.request?.abort();
    this.items = [];
    this.tray.replaceChildren();
    this.tray.hidden = true;
    this.onChange();
  }

  remove(item) {
    item.request?.abort();
    item.chip.remove();
    this.items = this.items.filter((other) => other !== item);
    this.tray.hidden = this.items.length === 0;
    this.onChange();
  }

  chipFor(file) {
    const chip = element("li", "attachment-chip is-uploading");
    const name = element("span", "attachment-name", file.name || "pasted image");
    const progress = element("progress", "attachment-progress");
    progress.max = 100;
    progress.value = 0;
    const status = element("span", "attachment-status", "Uploading…");
    const remove = element("button", "button-quiet attachment-remove", "×");
    remove.type = "button";
    remove.setAttribute("aria-label", `Remove ${file.name || "pasted image"}`);
    chip.append(name, progress, status, remove);
    return { chip, progress, status, remove };
  }

  fail(item, parts, reason) {
    item.failed = true;
    item.request = null;
    item.chip.classList.remove("is-uploading");
    item.chip.classList.add("is-failed");
    parts.progress.remove();
    parts.status.textContent = reason;
    this.onError(`${item.file.name || "The file"}: ${reason}`);
    this.onChange();
  }

  upload(file) {
    const parts = this.chipFor(file);
    const item = { file, chip: parts.chip, request: null, entry: null, failed: false };
    parts.remove.addEventListener("click", () => this.remove(item));
    this.items.push(item);
    this.tray.append(parts.chip);
    this.tray.hidden = false;
    this.onChange();
    if (file.size > this.maxBytes) {
      this.fail(item, parts, `too large (at most ${formatSize(this.maxBytes)})`);
      return;
    }
    const form = new FormData();
    form.append("file", file, file.name || "pasted-image.png");
    const request = new XMLHttpRequest();
    item.request = request;
    request.open("POST", this.uploadUrl);
    request.setRequestHeader("X-CSRFToken", this.csrfToken);
    request.responseType = "json";
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) parts.progress.value = (100 * event.loaded) / event.total;
    });
    request.addEventListener("load", () => {
      if (request.status === 201 && request.response && request.response.attachment) {
        item.entry = request.response.attachment;
        item.request = null;
        parts.chip.classList.remove("is-uploading");
        parts.progress.remove();
        parts.status.textContent = formatSize(item.entry.size);
        this.onChange();
        return;
      }
      const said = request.response && request.response.error;
      this.fail(item, parts, said || (request.status === 413 ? "too large" : `refused (${request.status})`));
    });
    request.addEventListener("error", () => this.fail(item, parts, "upload failed; try again"));
    request.send(form);
  }
}

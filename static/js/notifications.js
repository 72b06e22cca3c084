/**
 * notifications.js — the header bell: unread count, dropdown of recent notifications, live.
 *
 * Markup: templates/notifications/_bell.html (an element with data-notification-bell carrying
 * data-ws-path, data-poll-url, data-api-url, data-read-url and data-cursor = newest id shown).
 *
 * Transport: a ReconnectingSocket (socket.js) on ws/notifications/, which sends
 *   {"type": "unread", "count": N}  and  {"type": "notification", "id", "text", "url", ...}
 * and takes {"type": "read", "ids": [...]} / {"type": "read_all"}. When the browser has no
 * WebSocket, or the socket fails FALLBACK_AFTER times in a row (each time never opening, or
 * closing within STABLE_MS: a proxy that drops or cuts upgrades), the bell switches to the
 * long-poll feed
 *   GET /notifications/poll/?after=<cursor>&timeout=25 -> {"notifications": [...], "cursor": id}
 * and marks read through POST /api/notifications/read/ (with the CSRF cookie). While polling it
 * tries the WebSocket again every RETRY_SOCKET_MS and goes back to it once it holds.
 * The element's data-transport attribute says which is in use: socket, poll or stopped.
 * When the server says the login is gone (socket closed with 4401, poll answered 401) the bell
 * stops, shows it is signed out (class is-signed-out, a "!" badge) and the page's signed-out banner.
 */

import { ReconnectingSocket, wsUrl } from "./socket.js";
import { showSignedOut } from "./signed-out.js";

const FALLBACK_AFTER = 3; // consecutive failed WebSocket attempts before long-polling
const STABLE_MS = 5000; // a socket that stayed open this long was not a failure
const RETRY_SOCKET_MS = 5 * 60 * 1000; // how often a polling bell tries the WebSocket again
const RECENT = 8; // items kept in the dropdown
const POLL_TIMEOUT = 25; // seconds the server holds a poll

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

class Bell {
  constructor(root) {
    this.root = root;
    this.count = root.querySelector("[data-bell-count]");
    this.list = root.querySelector("[data-bell-list]");
    this.dropdown = root.querySelector("[data-bell-dropdown]");
    this.toggle = root.querySelector("[data-bell-toggle]");
    this.cursor = Number(root.dataset.cursor || 0);
    this.unread = Number(this.count.textContent || 0);
    this.socket = null;
    this.hadSocket = false;
    this.socketGeneration = 0;
    this.polling = false;
    this.retryTimer = null;
    this.mode = "connecting"; // "socket" | "poll" | "stopped"
    this.root.dataset.transport = this.mode;
    this.bindUi();
    if (typeof window.WebSocket === "function") this.openSocket();
    else this.startPolling();
  }

  bindUi() {
    this.toggle.addEventListener("click", () => this.setOpen(this.dropdown.hidden));
    document.addEventListener("click", (event) => {
      if (!this.root.contains(event.target)) this.setOpen(false);
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.setOpen(false);
    });
    this.root.querySelector("[data-bell-read-all]").addEventListener("click", () => this.readAll());
    this.list.addEventListener("click", (event) => {
      const item = event.target.closest("[data-notification-id]");
      if (item && item.classList.contains("is-unread")) this.read([Number(item.dataset.notificationId)]);
    });
  }

  setOpen(open) {
    this.dropdown.hidden = !open;
    this.toggle.setAttribute("aria-expanded", String(open));
  }

  // --- what the bell shows -------------------------------------------------------------------

  setUnread(count) {
    this.unread = Math.max(0, count);
    this.count.textContent = String(this.unread);
    this.count.hidden = this.unread === 0;
    this.root.classList.toggle("has-unread", this.unread > 0);
    for (const node of document.querySelectorAll("[data-page-unread]")) node.textContent = String(this.unread);
  }

  /** Show `n` in the dropdown (newest first); false if it is already shown. */
  addNotification(n) {
    if (this.list.querySelector(`[data-notification-id="${n.id}"]`)) return false;
    const isNewest = n.id > this.cursor;
    this.cursor = Math.max(this.cursor, n.id);
    this.list.querySelector(".bell-empty")?.remove();
    const item = document.createElement("li");
    item.className = "notification-item" + (n.read ? "" : " is-unread");
    item.dataset.notificationId = String(n.id);
    const link = document.createElement("a");
    link.href = n.url || "/notifications/";
    const text = document.createElement("span");
    text.className = "notification-text";
    text.textContent = n.text;
    const time = document.createElement("time");
    time.dateTime = n.created;
    time.textContent = "just now";
    link.append(text, time);
    item.append(link);
    const older = [...this.list.children].find((li) => Number(li.dataset.notificationId) < n.id);
    this.list.insertBefore(item, older || null);
    while (this.list.children.length > RECENT) this.list.lastElementChild.remove();
    if (isNewest && !n.read) {
      // Other modules may act on a new notification (attention.js: a desktop notification).
      document.dispatchEvent(new CustomEvent("notifications:new", { detail: n }));
      this.root.classList.add("bell-ring");
      setTimeout(() => this.root.classList.remove("bell-ring"), 1500);
    }
    return true;
  }

  markShownRead(ids) {
    for (const item of this.list.querySelectorAll(".is-unread")) {
      if (!ids || ids.includes(Number(item.dataset.notificationId))) item.classList.remove("is-unread");
    }
  }

  // --- marking read ---------------------------------------------------------------------------

  read(ids) {
    this.markShownRead(ids);
    if (this.mode === "socket" && this.socket?.send({ type: "read", ids })) return;
    this.postRead({ ids });
  }

  readAll() {
    this.markShownRead(null);
    if (this.mode === "socket" && this.socket?.send({ type: "read_all" })) return;
    this.postRead({ all: true });
  }

  async postRead(body) {
    try {
      const response = await fetch(this.root.dataset.readUrl, {
        method: "POST",
        credentials: "same-origin",
        keepalive: true, // a click on a notification navigates away; the request still goes
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify(body),
      });
      if (response.ok) this.setUnread((await response.json()).unread);
    } catch (error) {
      console.warn("notifications.js: could not mark read", error);
    }
  }

  // --- WebSocket ------------------------------------------------------------------------------

  openSocket() {
    // Each socket the bell opens gets a generation; events of a socket given up are ignored.
    const generation = ++this.socketGeneration;
    const current = () => generation === this.socketGeneration;
    let failures = 0;
    let openedAt = 0;
    this.socket = new ReconnectingSocket(() => wsUrl(this.root.dataset.wsPath), {
      onOpen: () => {
        if (!current()) return;
        openedAt = Date.now();
        if (this.hadSocket) this.refreshRecent(); // catch up on what arrived meanwhile
        this.hadSocket = true;
        this.setMode("socket");
      },
      onMessage: (frame) => {
        if (current()) this.onFrame(frame);
      },
      onStateChange: (state) => {
        if (!current()) return;
        if (state === "reconnecting") {
          const lived = openedAt ? Date.now() - openedAt : 0;
          openedAt = 0;
          failures = lived >= STABLE_MS ? 1 : failures + 1;
          if (failures >= FALLBACK_AFTER) {
            this.dropSocket();
            this.startPolling();
          }
        } else if (state === "closed") {
          this.dropSocket();
          this.signedOut(); // 4401: the login is gone
        }
      },
    });
  }

  dropSocket() {
    const socket = this.socket;
    this.socketGeneration += 1;
    this.socket = null;
    if (socket && socket.state !== "closed") socket.close();
  }

  onFrame(frame) {
    if (frame.type === "unread" && frame.user !== undefined && frame.user !== this.root.dataset.username) {
      // The socket reconnected as someone else (another account logged in in this browser):
      // this page's bell must not show their notifications.
      this.dropSocket();
      this.signedOut();
      return;
    }
    if (frame.type === "unread") this.setUnread(frame.count);
    else if (frame.type === "notification") this.addNotification(frame);
    else if (frame.type === "error") console.warn("notifications.js: server error", frame);
  }

  async refreshRecent() {
    try {
      const response = await fetch(`${this.root.dataset.apiUrl}?limit=${RECENT}`, { credentials: "same-origin" });
      if (!response.ok) return;
      const body = await response.json();
      for (const n of body.notifications.reverse()) this.addNotification(n);
      this.setUnread(body.unread);
    } catch (error) {
      console.warn("notifications.js: could not refresh", error);
    }
  }

  // --- long-poll fallback ---------------------------------------------------------------------

  async startPolling() {
    this.setMode("poll");
    if (typeof window.WebSocket === "function") {
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        if (this.mode === "poll") this.openSocket();
      }, RETRY_SOCKET_MS);
    }
    if (this.polling) return; // the loop below is already running
    this.polling = true;
    let delay = 1000;
    while (this.mode === "poll") {
      try {
        const url = `${this.root.dataset.pollUrl}?after=${this.cursor}&timeout=${POLL_TIMEOUT}`;
        const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
        if (response.status === 401) {
          this.signedOut();
          break;
        }
        if (!response.ok) throw new Error(`poll answered ${response.status}`);
        const body = await response.json();
        let fresh = 0;
        for (const n of body.notifications) if (this.addNotification(n) && !n.read) fresh += 1;
        if (fresh) this.setUnread(this.unread + fresh);
        this.cursor = Math.max(this.cursor, body.cursor);
        delay = 1000;
      } catch (error) {
        console.warn("notifications.js: poll failed, retrying", error);
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 30000);
      }
    }
    this.polling = false;
  }

  /** The login is gone: stop, and say so on the bell and the page. */
  signedOut() {
    this.setMode("stopped");
    clearTimeout(this.retryTimer);
    this.root.classList.add("is-signed-out");
    this.count.textContent = "!";
    this.count.hidden = false;
    this.toggle.title = "Signed out: log in again to get notifications";
    showSignedOut();
  }

  setMode(mode) {
    this.mode = mode;
    this.root.dataset.transport = mode;
  }
}

for (const root of document.querySelectorAll("[data-notification-bell]")) {
  if (!root.bell) root.bell = new Bell(root);
}

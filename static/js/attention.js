/**
 * attention.js — what the room page does to get your attention (chat.js creates one Attention):
 *
 * - The tab title counts what you have not read: this room's messages by others past your read
 *   marker (chat.js reports them), plus the unread counts of your other rooms from
 *   GET /api/chat/rooms/ (asked on load, whenever the tab is shown or hidden, and every POLL_MS
 *   while it is hidden), leaving out rooms set to notify you of nothing: "(3) #general · Switchboard".
 * - Desktop notifications (the browser's Notification API), only while the tab is hidden and only
 *   after you allowed them with the panel's button (the page never asks by itself): a message
 *   here that your level for this room lets through (all; or mentions of you, and every message
 *   of a DM), a mention elsewhere (the bell's stream: notifications.js dispatches
 *   "notifications:new"), and new messages in your other DMs and "all" rooms (the counts above).
 *   Clicking one brings the tab forward and shows the message (or opens the room).
 * - The panel's level select sends {"type": "notify", "level"} on the room socket; the server
 *   answers with the same frame (chat/protocol.py), which sets what the page shows.
 */

import { mentions } from "./message-view.js";

const POLL_MS = 20000;
const BODY_LENGTH = 200;

const hasNotifications = () => typeof window.Notification === "function";
const hidden = () => document.visibilityState !== "visible";

export class Attention {
  /**
   * @param {HTMLElement} app  the #chat-app element (data-room, data-kind, data-notify)
   * @param {object} options   me: your username; roomName: how this room is called;
   *                           send(frame) -> bool: send on the room socket;
   *                           onOpenMessage(id): show message `id` of this room.
   */
  constructor(app, { me, roomName, send, onOpenMessage }) {
    this.room = app.dataset.room;
    this.kind = app.dataset.kind;
    this.level = app.dataset.notify || "mentions";
    this.me = me;
    this.roomName = roomName;
    this.send = send;
    this.onOpenMessage = onOpenMessage;
    this.baseTitle = document.title;
    this.roomUnread = 0;
    this.otherUnread = 0;
    this.otherCounts = null; // slug -> unread, once the first answer came
    this.select = app.querySelector("[data-notify-level]");
    this.summary = app.querySelector("[data-notify-summary]");
    this.desktopState = app.querySelector("[data-desktop-state]");
    this.enableButton = app.querySelector("[data-desktop-enable]");
    if (!me) return;
    this.bindPanel();
    this.showLevel(this.level);
    this.showDesktopState();
    document.addEventListener("visibilitychange", () => this.refreshOthers());
    document.addEventListener("notifications:new", (event) => this.onBellNotification(event.detail));
    setInterval(() => {
      if (hidden()) this.refreshOthers();
    }, POLL_MS);
    this.refreshOthers();
  }

  // --- the panel ------------------------------------------------------------------------------

  bindPanel() {
    this.select?.addEventListener("change", () => {
      if (!this.send({ type: "notify", level: this.select.value })) {
        this.select.value = this.level; // not connected: nothing changed
      }
    });
    this.enableButton?.addEventListener("click", async () => {
      if (!hasNotifications()) return;
      try {
        await Notification.requestPermission();
      } finally {
        this.showDesktopState();
      }
    });
  }

  showLevel(level) {
    this.level = level;
    if (this.select) this.select.value = level;
    if (this.summary && this.select) {
      this.summary.textContent = this.select.selectedOptions[0]?.dataset.short || level;
    }
  }

  showDesktopState() {
    if (!this.desktopState) return;
    let text;
    let canAsk = false;
    if (!hasNotifications()) text = "This browser has no desktop notifications.";
    else if (Notification.permission === "granted") text = "Desktop notifications are on while this tab is hidden.";
    else if (Notification.permission === "denied") text = "Desktop notifications are blocked in this browser's site settings.";
    else {
      text = "Desktop notifications are off.";
      canAsk = true;
    }
    this.desktopState.textContent = text;
    if (this.enableButton) this.enableButton.hidden = !canAsk;
  }

  /** The server's answer to a `notify` frame (or a change made in another tab of this socket). */
  onNotifyFrame(frame) {
    if (frame.room === this.room) this.showLevel(frame.level);
  }

  // --- the tab title --------------------------------------------------------------------------

  /** chat.js: how many messages of this room you have not read (by others, past your marker). */
  setRoomUnread(count) {
    this.roomUnread = count;
    this.showTitle();
  }

  showTitle() {
    const total = this.roomUnread + this.otherUnread;
    document.title = total > 0 ? `(${total > 99 ? "99+" : total}) ${this.baseTitle}` : this.baseTitle;
  }

  async refreshOthers() {
    let rooms;
    try {
      const response = await fetch("/api/chat/rooms/", { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      rooms = (await response.json()).rooms;
    } catch {
      return; // offline for a moment: the next refresh tries again
    }
    const before = this.otherCounts;
    this.otherCounts = {};
    this.otherUnread = 0;
    for (const [slug, counts] of Object.entries(rooms)) {
      if (slug === this.room || counts.notify === "nothing") continue;
      this.otherCounts[slug] = counts.unread;
      this.otherUnread += counts.unread;
      const grew = before && counts.unread > (before[slug] || 0);
      if (grew && (counts.notify === "all" || (counts.kind === "dm" && counts.notify === "mentions"))) {
        const name = counts.kind === "dm" ? `✉ ${counts.name}` : counts.kind === "private" ? `🔒 ${counts.name}` : `#${slug}`;
        this.desktop(`New messages in ${name}`, `${counts.unread} unread`, `room-${slug}`, () => {
          window.location.href = `/rooms/${encodeURIComponent(slug)}/`;
        });
      }
    }
    this.showTitle();
  }

  // --- desktop notifications ------------------------------------------------------------------

  /** chat.js: a live message of this room arrived (not history, not a replay). */
  messageArrived(frame) {
    if (!this.me || frame.user === this.me || this.level === "nothing") return;
    const mentioned = mentions(frame.text, this.me);
    const wanted = this.level === "all" || mentioned || this.kind === "dm";
    if (!wanted) return;
    const title = mentioned
      ? `${frame.user} mentioned you in ${this.roomName}`
      : `${frame.user} in ${this.roomName}`;
    this.desktop(title, frame.text, `message-${frame.id}`, () => this.onOpenMessage(frame.id));
  }

  /** A new notification of the bell: mentions in other rooms become desktop notifications. */
  onBellNotification(notification) {
    if (!notification || notification.verb !== "mention") return;
    const match = (notification.url || "").match(/^\/rooms\/([^/]+)\/#message-(\d+)$/);
    if (!match || match[1] === this.room) return; // this room's come through messageArrived
    this.desktop(notification.text, "", `message-${match[2]}`, () => {
      window.location.href = notification.url;
    });
  }

  /** Show a desktop notification if the tab is hidden and the user allowed them. */
  desktop(title, body, tag, onClick) {
    if (!hidden() || !hasNotifications() || Notification.permission !== "granted") return;
    const text = body.length > BODY_LENGTH ? `${body.slice(0, BODY_LENGTH - 1)}…` : body;
    let shown;
    try {
      shown = new Notification(title, { body: text, tag });
    } catch {
      return; // some browsers allow them only from a service worker: no desktop notification
    }
    shown.onclick = () => {
      window.focus();
      shown.close();
      onClick();
    };
  }
}

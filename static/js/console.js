/**
 * console.js — the staff console (/console/): one socket to ws/chat/admin/ that receives every
 * room's messages and presence, the audit log and the message rate, and sends delete, mute and
 * announce (protocol in chat/protocol.py and docs/protocols/chat.md).
 *
 * An announcement is one message per room on the wire; the feed shows it once, tagged with every
 * room it went to. The moderator's own mutes and announcements are confirmed (a toast) when their
 * audit entry comes back, so "nothing happened" and "done" look different.
 */

import { ReconnectingSocket, wsUrl } from "./socket.js";
import { showToast } from "./toast.js";
import { ConnectionBadge } from "./connection-badge.js";
import { showSignedOut } from "./signed-out.js";
import { formatDateTime, formatTime, renderMessage, updateText } from "./message-view.js";

const app = document.getElementById("console-app");
const ME = app.dataset.username || "";
const FEED_LIMIT = 200;
const SAME_ANNOUNCEMENT_MS = 60 * 1000; // copies of one announcement are saved within this time

const feed = app.querySelector("[data-feed]");
const presenceList = app.querySelector("[data-presence]");
const auditList = app.querySelector("[data-audit]");
const rate = app.querySelector("[data-stat-rate]");
const online = app.querySelector("[data-stat-online]");
const roomCount = app.querySelector("[data-stat-rooms]");
const stateBadge = app.querySelector("[data-connection-state]");
const announceForm = app.querySelector("[data-announce-form]");
const muteForm = app.querySelector("[data-mute-form]");

const items = new Map(); // message id -> li (the copies of one announcement share one li)
const presence = new Map(); // room -> [users]
const badge = new ConnectionBadge(stateBadge, {
  closeTexts: { 4401: "Signed out", 4403: "Staff only" },
});
const inFlight = []; // the actions this page sent ("delete", "mute", "announce"), oldest first

function deleteAction() {
  return {
    name: "delete",
    label: "Delete",
    onClick: (frame) => {
      if (window.confirm(`Delete this message by ${frame.user} in #${frame.room}?`)) {
        if (socket.send({ type: "delete", id: frame.id })) inFlight.push("delete");
      }
    },
  };
}

/** The feed item already showing another room's copy of announcement `frame`, if any. */
function sameAnnouncement(frame) {
  if (frame.kind !== "announcement") return null;
  const ts = new Date(frame.ts).getTime();
  for (const li of feed.querySelectorAll(".message.is-announcement")) {
    const shown = li.announcement;
    if (shown && shown.user === frame.user && shown.text === frame.text && !shown.rooms.has(frame.room)) {
      if (Math.abs(ts - shown.ts) < SAME_ANNOUNCEMENT_MS) return li;
    }
  }
  return null;
}

function roomTag(room) {
  const tag = document.createElement("span");
  tag.className = "room-tag";
  tag.dataset.room = room;
  tag.textContent = `#${room}`;
  return tag;
}

function addToFeed(frame) {
  if (items.has(frame.id)) return;
  const stick = feed.scrollHeight - feed.scrollTop - feed.clientHeight < 60;
  const shown = sameAnnouncement(frame);
  if (shown) {
    shown.announcement.rooms.set(frame.room, frame.id);
    const tags = [...shown.querySelectorAll(".message-meta .room-tag[data-room]")];
    const after = tags.filter((tag) => tag.dataset.room < frame.room).pop() || null;
    const tag = roomTag(frame.room);
    if (after) after.after(tag);
    else shown.querySelector(".message-meta").prepend(tag);
    items.set(frame.id, shown);
    return;
  }
  const li = renderMessage(frame, { showRoom: true, actions: [deleteAction()] });
  const tag = li.querySelector(".message-meta .room-tag");
  if (tag) tag.dataset.room = frame.room;
  if (frame.kind === "announcement") {
    li.announcement = {
      user: frame.user,
      text: frame.text,
      ts: new Date(frame.ts).getTime(),
      rooms: new Map([[frame.room, frame.id]]),
    };
  }
  items.set(frame.id, li);
  feed.append(li);
  while (feed.children.length > FEED_LIMIT) {
    const first = feed.firstElementChild;
    for (const [id, item] of items) if (item === first) items.delete(id);
    first.remove();
  }
  if (stick) feed.scrollTop = feed.scrollHeight;
}

/** Message `id` was deleted: drop its room from a shared announcement, or its item. */
function removeFromFeed(frame) {
  const li = items.get(frame.id);
  items.delete(frame.id);
  if (!li) return;
  const shared = li.announcement;
  if (shared && shared.rooms.size > 1) {
    shared.rooms.delete(frame.room);
    li.querySelector(`.message-meta .room-tag[data-room="${CSS.escape(frame.room)}"]`)?.remove();
    return;
  }
  li.remove();
}

function renderPresence() {
  presenceList.replaceChildren();
  const everyone = new Set();
  for (const room of [...presence.keys()].sort()) {
    const users = presence.get(room);
    users.forEach((user) => everyone.add(user));
    const li = document.createElement("li");
    const tag = document.createElement("span");
    tag.className = "room-tag";
    tag.textContent = `#${room}`;
    const names = document.createElement("span");
    names.className = "presence-users";
    names.textContent = users.length ? users.join(", ") : "nobody";
    li.append(tag, names);
    presenceList.append(li);
  }
  online.textContent = String(everyone.size);
  roomCount.textContent = String(presence.size);
}

/** What every console sees of private rooms and DMs: that they exist, kind, member count. */
function renderPrivateRooms(rooms) {
  const list = app.querySelector("[data-private-rooms]");
  if (!list) return;
  list.replaceChildren(
    ...rooms.map(({ room, kind, members }) => {
      const li = document.createElement("li");
      li.dataset.privateRoom = room;
      const tag = document.createElement("span");
      tag.className = "room-tag";
      tag.textContent = `${kind === "dm" ? "✉" : "🔒"} ${room}`;
      const count = document.createElement("span");
      count.className = "presence-users";
      count.textContent = `${members} member${members === 1 ? "" : "s"}`;
      li.append(tag, count);
      return li;
    }),
  );
  if (rooms.length === 0) list.textContent = "None.";
}

const AUDIT_LIMIT = 100;
const audit = new Map(); // entry id -> entry

function renderAudit() {
  const entries = [...audit.values()].sort((a, b) => b.id - a.id).slice(0, AUDIT_LIMIT);
  auditList.replaceChildren(
    ...entries.map((entry) => {
      const li = document.createElement("li");
      const time = document.createElement("time");
      time.dateTime = entry.ts;
      time.textContent = formatTime(entry.ts);
      time.title = formatDateTime(entry.ts);
      const action = document.createElement("span");
      action.className = `audit-action audit-action-${entry.action}`;
      action.textContent = entry.action;
      const detail = document.createElement("span");
      detail.textContent = ` ${entry.actor}: ${entry.detail}`;
      li.append(time, action, detail);
      return li;
    }),
  );
}

function onFrame(frame) {
  switch (frame.type) {
    case "history":
      renderPrivateRooms(frame.private_rooms || []);
      for (const message of frame.messages) addToFeed(message);
      for (const room of frame.rooms || []) if (!presence.has(room)) presence.set(room, []);
      renderPresence();
      break;
    case "message":
      announcementPosted(frame);
      addToFeed(frame);
      break;
    case "edited": {
      const li = items.get(frame.id);
      if (li) updateText(li, frame.text);
      break;
    }
    case "deleted":
      removeFromFeed(frame);
      break;
    case "presence":
      presence.set(frame.room, frame.users);
      renderPresence();
      break;
    case "audit":
      for (const entry of frame.entries) {
        if (!audit.has(entry.id)) confirmOwn(entry);
        audit.set(entry.id, entry);
      }
      renderAudit();
      break;
    case "stats":
      rate.textContent = String(frame.messages_per_minute);
      break;
    case "error": {
      inFlight.shift(); // frames are answered in order: this refuses the oldest action in flight
      showToast(frame.detail || frame.code);
      // An announcement not yet shown as posted comes back to the form: sending it again retries
      // it under the same client_id.
      const textarea = announceForm.querySelector("textarea");
      if (pendingAnnouncement && !textarea.value) textarea.value = pendingAnnouncement.text;
      break;
    }
    default:
      break;
  }
}

/** Confirm a mute or announcement this page sent, when its audit entry arrives. */
function confirmOwn(entry) {
  const index = entry.actor === ME ? inFlight.indexOf(entry.action) : -1;
  if (index < 0) return;
  inFlight.splice(index, 1);
  if (entry.action === "mute") showToast(`${entry.detail}.`);
  else if (entry.action === "announce") showToast("Announced in every room.");
}

const socket = new ReconnectingSocket(() => wsUrl("/ws/chat/admin/"), {
  onMessage: onFrame,
  onStateChange: (state, detail) => {
    if (state !== "open") inFlight.length = 0;
    badge.update(state, detail);
    if (state === "closed" && detail.code === 4401) showSignedOut();
  },
});

// An announcement keeps its client_id until the server has shown it posted, so sending the same
// text again after an error retries it instead of posting it twice.
let pendingAnnouncement = null; // { text, clientId }

function announcementPosted(message) {
  if (pendingAnnouncement && message.client_id === pendingAnnouncement.clientId) {
    pendingAnnouncement = null;
  }
}

announceForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const textarea = announceForm.querySelector("textarea");
  const text = textarea.value;
  if (!text.trim()) return;
  if (!pendingAnnouncement || pendingAnnouncement.text !== text) {
    pendingAnnouncement = { text, clientId: `announce-${Date.now()}-${Math.random().toString(36).slice(2, 10)}` };
  }
  if (socket.send({ type: "announce", text, client_id: pendingAnnouncement.clientId })) {
    textarea.value = "";
    inFlight.push("announce");
  } else showToast("Not connected.");
});

muteForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = new FormData(muteForm);
  const frame = {
    type: "mute",
    user: String(data.get("user")).trim(),
    room: data.get("room") || null,
    minutes: Number(data.get("minutes")),
  };
  if (socket.send(frame)) {
    muteForm.reset();
    inFlight.push("mute");
  } else showToast("Not connected.");
});

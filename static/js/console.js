/**
 * console.js — the staff console (/console/): one socket to ws/chat/admin/ that receives every
 * room's messages and presence, the audit log and the message rate, and sends delete, mute and
 * announce (protocol in chat/protocol.py and docs/protocols/chat.md).
 */

import { ReconnectingSocket, wsUrl } from "./socket.js";
import { formatDateTime, formatTime, renderMessage, updateText } from "./message-view.js";

const app = document.getElementById("console-app");
const FEED_LIMIT = 200;

const feed = app.querySelector("[data-feed]");
const presenceList = app.querySelector("[data-presence]");
const auditList = app.querySelector("[data-audit]");
const rate = app.querySelector("[data-stat-rate]");
const online = app.querySelector("[data-stat-online]");
const roomCount = app.querySelector("[data-stat-rooms]");
const stateBadge = app.querySelector("[data-connection-state]");
const announceForm = app.querySelector("[data-announce-form]");
const muteForm = app.querySelector("[data-mute-form]");
const toast = document.querySelector("[data-toast]");

const items = new Map(); // message id -> li
const presence = new Map(); // room -> [users]

function showToast(text) {
  toast.textContent = text;
  toast.hidden = false;
  clearTimeout(showToast.timer);
  showToast.timer = setTimeout(() => (toast.hidden = true), 4000);
}

function deleteAction() {
  return {
    name: "delete",
    label: "Delete",
    onClick: (frame) => {
      if (window.confirm(`Delete this message by ${frame.user} in #${frame.room}?`)) {
        socket.send({ type: "delete", id: frame.id });
      }
    },
  };
}

function addToFeed(frame) {
  if (items.has(frame.id)) return;
  const stick = feed.scrollHeight - feed.scrollTop - feed.clientHeight < 60;
  const li = renderMessage(frame, { showRoom: true, actions: [deleteAction()] });
  items.set(frame.id, li);
  feed.append(li);
  while (feed.children.length > FEED_LIMIT) {
    const first = feed.firstElementChild;
    items.delete(Number(first.dataset.id));
    first.remove();
  }
  if (stick) feed.scrollTop = feed.scrollHeight;
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
      items.get(frame.id)?.remove();
      items.delete(frame.id);
      break;
    case "presence":
      presence.set(frame.room, frame.users);
      renderPresence();
      break;
    case "audit":
      for (const entry of frame.entries) audit.set(entry.id, entry);
      renderAudit();
      break;
    case "stats":
      rate.textContent = String(frame.messages_per_minute);
      break;
    case "error": {
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

const socket = new ReconnectingSocket(() => wsUrl("/ws/chat/admin/"), {
  onMessage: onFrame,
  onStateChange: (state) => {
    stateBadge.dataset.state = state;
    stateBadge.textContent = { open: "Live", connecting: "Connecting…", reconnecting: "Reconnecting…", closed: "Offline" }[state] || state;
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
    showToast("Announcement sent to every room.");
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
  if (socket.send(frame)) muteForm.reset();
  else showToast("Not connected.");
});

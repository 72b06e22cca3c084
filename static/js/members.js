/**
 * members.js — the members panel of a private room or DM page (templates/chat/room.html). The
 * server renders the panel; this module keeps it current from the room socket's `member` frames,
 * which chat.js passes on as a "chat:member" event on #chat-app:
 *
 *   {"type": "member", "room": "p-…", "user": "bob", "action": "invited", "by": "alice", "seq": 16}
 *
 * invited / joined add or update the person's row; declined / left / removed take it away. Names
 * are set with textContent only. The owner's "Remove" buttons are plain forms (POST
 * /rooms/<slug>/remove/), so a new row gets one built from the panel's data-remove-url.
 */

import { showToast } from "./toast.js";

const app = document.getElementById("chat-app");
const panel = app.querySelector("[data-members-panel]");
const list = panel ? panel.querySelector("[data-members]") : null;
const count = panel ? panel.querySelector("[data-member-count]") : null;
const ME = app.dataset.username || "";
const OWNER = panel ? panel.dataset.owner === "1" : false;
const PRIVATE = app.dataset.kind === "private";
const csrfInput = document.querySelector("input[name=csrfmiddlewaretoken]");

const GONE = new Set(["declined", "left", "removed"]);
const SAID = {
  invited: (f) => `${f.by} invited ${f.user}`,
  joined: (f) => `${f.user} joined`,
  declined: (f) => `${f.user} declined the invitation`,
  left: (f) => `${f.user} left`,
  removed: (f) => `${f.by} removed ${f.user}`,
};

function rowOf(user) {
  for (const li of list.children) if (li.dataset.member === user) return li;
  return null;
}

function removeButton(user) {
  const form = document.createElement("form");
  form.method = "post";
  form.action = panel.dataset.removeUrl;
  form.className = "member-remove";
  const token = document.createElement("input");
  token.type = "hidden";
  token.name = "csrfmiddlewaretoken";
  token.value = csrfInput ? csrfInput.value : "";
  const name = document.createElement("input");
  name.type = "hidden";
  name.name = "username";
  name.value = user;
  const button = document.createElement("button");
  button.type = "submit";
  button.className = "button-quiet";
  button.dataset.remove = user;
  button.setAttribute("aria-label", `Remove ${user}`);
  button.textContent = "Remove";
  form.append(token, name, button);
  return form;
}

function renderRow(li, user, state) {
  li.dataset.member = user;
  li.dataset.state = state;
  const name = document.createElement("span");
  name.className = "member-name";
  name.textContent = user;
  const parts = [name];
  if (state === "invited") {
    const note = document.createElement("span");
    note.className = "muted";
    note.textContent = " invited";
    parts.push(note);
  }
  if (PRIVATE && OWNER && user !== ME) parts.push(removeButton(user));
  li.replaceChildren(...parts);
}

function onMember(frame) {
  if (!list) return;
  const known = rowOf(frame.user);
  if (GONE.has(frame.action)) {
    if (known) known.remove();
  } else if (frame.action === "joined" && known && known.dataset.state === "joined") {
    // Already shown (the page was rendered after this event).
  } else {
    const li = known || document.createElement("li");
    renderRow(li, frame.user, frame.action === "invited" ? "invited" : "joined");
    if (!known) list.append(li);
  }
  if (count) count.textContent = String(list.querySelectorAll('[data-state="joined"]').length);
  const say = SAID[frame.action];
  if (say && frame.user !== ME && frame.by !== ME) showToast(say(frame));
}

app.addEventListener("chat:member", (event) => onMember(event.detail));

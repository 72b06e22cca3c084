/**
 * chat.js — the room page (/rooms/<slug>/): one socket to ws/chat/<slug>/ (protocol in
 * chat/protocol.py and docs/protocols/chat.md).
 *
 * - Reconnects by itself (socket.js) with ?after=<last id>&seq=<last seq>, so it gets exactly what
 *   it missed; messages typed while offline wait in an outbox and are sent (once) after the replay.
 *   The outbox is kept in sessionStorage too, so a reload (or logging in again) does not lose it.
 * - The opening history frame says who the socket is ("user"). When that is not who the page was
 *   rendered for (the session ended while the page was away, or another account logged in), the
 *   page stops and says so, never "Live", and keeps the unsent messages for after logging in.
 * - A refused message (muted, rate limited, ...) says why under it and can be retried or dismissed.
 * - Enter sends, Shift+Enter adds a line, ↑ in an empty composer edits your last message, Esc
 *   cancels an edit. Older pages load when you scroll to the top.
 * - Shows presence, typing, a "new messages" divider from your read marker, and moves the marker
 *   while the tab is visible and scrolled to the bottom.
 * - Reply (the quote jumps to the original, loading older pages if needed: replies.js) and
 *   reactions (reactions.js) on every message, for logged-in readers.
 * - Attachments (attachments.js): the attach button, a drop on the composer or a pasted image
 *   upload at once; the message then names the finished uploads, and may have no text.
 * - The unread count in the tab title, desktop notifications and this room's notify level
 *   (attention.js), fed with the live messages and what is unread here.
 */

import { DEFAULT_FINAL_CODES, ReconnectingSocket, wsUrl } from "./socket.js";
import { showToast } from "./toast.js";
import { ConnectionBadge } from "./connection-badge.js";
import { renderMessage, updateText } from "./message-view.js";
import { showSignedOut } from "./signed-out.js";
import { openPicker, renderReactions } from "./reactions.js";
import { jumpTo, markQuotesDeleted, renderQuote, ReplyComposer } from "./replies.js";
import { attachMentionComplete } from "./mention-complete.js";
import { AttachmentTray, renderAttachments } from "./attachments.js";
import { Attention } from "./attention.js";

const app = document.getElementById("chat-app");
const ROOM = app.dataset.room;
const ME = app.dataset.username || "";
const STAFF = app.dataset.staff === "1";
const EDIT_WINDOW_MS = Number(app.dataset.editWindow || 600) * 1000;
const TYPING_SEND_MS = 2000;
const TYPING_SHOW_MS = 3500;
const CONTINUATION_MS = 5 * 60 * 1000;
const OUTBOX_KEY = `switchboard:outbox:${ROOM}:${ME}`;
// The socket takes 20 frames a second in bursts of 40, with at most 32 waiting for their handler
// (realtime/generic/frames.py); beyond that it refuses a run of frames with one error frame that
// cannot say which they were. So the outbox goes out a few messages at a time, paced well inside
// that budget: a refusal is then the handler's, for the oldest message in flight (see onError).
const MAX_IN_FLIGHT = 8;
const SEND_SPACING_MS = 100;
const EMOJI = JSON.parse(app.dataset.reactions || "[]");

const list = app.querySelector("[data-messages]");
const scroller = app.querySelector("[data-scroller]");
const loadOlder = app.querySelector("[data-load-older]");
const historyStart = app.querySelector("[data-history-start]");
const stateBadge = app.querySelector("[data-connection-state]");
const typingLine = app.querySelector("[data-typing]");
const people = app.querySelector("[data-people]");
const onlineCount = app.querySelector("[data-online-count]");
const onlineSummary = app.querySelector("[data-online-summary]");
const composer = app.querySelector("[data-composer]");
const textarea = app.querySelector("[data-composer-text]");
const composerMode = app.querySelector("[data-composer-mode]");
const composerHint = composerMode ? composerMode.innerHTML : "";
const tray = composer
  ? new AttachmentTray({
      tray: composer.querySelector("[data-attachment-tray]"),
      button: composer.querySelector("[data-attach]"),
      input: composer.querySelector("[data-attach-input]"),
      dropZone: composer,
      pasteTarget: textarea,
      uploadUrl: app.dataset.uploadUrl,
      maxBytes: Number(app.dataset.attachmentMaxBytes),
      csrfToken: composer.querySelector("input[name=csrfmiddlewaretoken]").value,
      onError: showToast,
    })
  : null;
const replying = composerMode
  ? new ReplyComposer(composerMode, () => (composerMode.innerHTML = composerHint))
  : null;
const badge = new ConnectionBadge(stateBadge, {
  closeTexts: { 4403: "Not a member", 4404: "Room not found" },
});

const messages = new Map(); // id -> {frame, li}
const outbox = new Map(); // client_id -> {text, li, sent}, in the order typed
let lastId = 0;
let lastSeq = 0;
let lastRead = null;
let readSent = 0;
let loadingOlder = false;
let editing = null; // id of the message being edited
let lastTypingSent = 0;
let lastMessageSent = 0; // Date.now() of the last message frame sent (SEND_SPACING_MS)
let flushTimer = null; // the next paced flushOutbox()
let signedOut = false; // the socket turned out to be someone else than the page: stopped for good
let pendingJump = null; // retry() of a jump to a message not loaded yet (see replies.js)
const typists = new Map(); // user -> timeout
const peopleSeen = new Set(); // names for @ autocomplete: authors shown and people online

function nearBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
}

function scrollToBottom() {
  scroller.scrollTop = scroller.scrollHeight;
}

function actionsFor(frame) {
  if (!ME || frame.id === undefined) return [];
  const own = frame.user === ME && frame.kind !== "announcement";
  const fresh = Date.now() - new Date(frame.ts).getTime() < EDIT_WINDOW_MS;
  const actions = [];
  if (composer) {
    actions.push({ name: "reply", label: "Reply", onClick: () => startReply(frame) });
    actions.push({
      name: "react",
      label: "React",
      onClick: (_, li) => openPicker(li, EMOJI, (emoji) => toggleReaction(frame.id, emoji, true)),
    });
  }
  if (own && fresh) actions.push({ name: "edit", label: "Edit", onClick: () => startEdit(frame.id) });
  if ((own && fresh) || STAFF) {
    actions.push({
      name: "delete",
      label: "Delete",
      onClick: () => {
        if (window.confirm("Delete this message?")) socket.send({ type: "delete", id: frame.id });
      },
    });
  }
  return actions;
}

/** Mark `li` as a continuation when the previous message is by the same author shortly before. */
function markContinuation(li) {
  const prev = li.previousElementSibling;
  const gap = prev ? new Date(li.dataset.ts) - new Date(prev.dataset.ts) : -1;
  const same =
    prev &&
    prev.classList.contains("message") &&
    !prev.classList.contains("is-announcement") &&
    !li.classList.contains("is-announcement") &&
    prev.dataset.user === li.dataset.user &&
    gap >= 0 &&
    gap < CONTINUATION_MS;
  li.classList.toggle("is-continuation", Boolean(same));
}

function toggleReaction(id, emoji, add) {
  if (!socket.send({ type: add ? "react" : "unreact", id, emoji })) {
    showToast("Not connected; try again in a moment.");
  }
}

function showReactions(frame, li) {
  renderReactions(li, frame.reactions, {
    me: ME,
    onToggle: (emoji, add) => toggleReaction(frame.id, emoji, add),
  });
}

function jumpToMessage(id) {
  pendingJump = jumpTo(id, {
    find: (wanted) => (messages.get(wanted) || {}).li,
    loadOlder: () => {
      requestOlder();
      return loadingOlder;
    },
    onMissing: () => showToast("The original message is no longer here."),
  });
}

function buildMessage(frame) {
  const li = renderMessage(frame, { me: ME, actions: actionsFor(frame) });
  renderQuote(li, frame.reply_to, jumpToMessage);
  renderAttachments(li, frame.attachments);
  if (frame.kind !== "announcement") peopleSeen.add(frame.user);
  showReactions(frame, li);
  messages.set(frame.id, { frame, li });
  lastId = Math.max(lastId, frame.id);
  return li;
}

/** Insert a message frame at its place (by id); an id seen before is updated, not duplicated. */
function addMessage(frame, { flash = false } = {}) {
  const pending = frame.client_id && outbox.get(frame.client_id);
  if (pending && frame.user === ME) {
    pending.li.remove();
    outbox.delete(frame.client_id);
    saveOutbox();
    flushOutbox(); // one less in flight: the next may go
  }
  const known = messages.get(frame.id);
  if (known) {
    if (known.frame.text !== frame.text) updateText(known.li, frame.text);
    return;
  }
  const li = buildMessage(frame);
  let before = null;
  for (const child of list.children) {
    if (child.dataset.id && Number(child.dataset.id) > frame.id) {
      before = child;
      break;
    }
    if (child.classList.contains("is-pending") || child.classList.contains("is-failed")) {
      before = child; // messages not (yet) sent stay last
      break;
    }
  }
  list.insertBefore(li, before);
  markContinuation(li);
  if (li.nextElementSibling) markContinuation(li.nextElementSibling);
  if (flash) li.classList.add("is-flash");
}

function placeDivider() {
  const old = list.querySelector(".new-divider");
  if (old) {
    const next = old.nextElementSibling;
    old.remove();
    if (next) markContinuation(next);
  }
  if (!ME || lastRead === null) return;
  for (const { frame, li } of [...messages.values()].sort((a, b) => a.frame.id - b.frame.id)) {
    if (frame.id > lastRead && frame.user !== ME) {
      const divider = document.createElement("li");
      divider.className = "new-divider";
      divider.textContent = "New messages";
      divider.setAttribute("role", "separator");
      list.insertBefore(divider, li);
      markContinuation(li); // the first new message starts a run: it shows its author
      return;
    }
  }
}

function markRead() {
  const reading = ME && document.visibilityState === "visible" && nearBottom();
  if (reading && lastId > readSent && socket.send({ type: "read", id: lastId })) readSent = lastId;
  showUnread();
}

/** Tell attention.js how many messages by others here are past what you have read. */
function showUnread() {
  if (!ME || lastRead === null) return;
  let unread = 0;
  for (const { frame } of messages.values()) if (frame.id > readSent && frame.user !== ME) unread += 1;
  attention.setRoomUnread(unread);
}

function onHistory(frame) {
  if (frame.before !== undefined) {
    // An older page: prepend and keep what the reader looks at in place.
    const height = scroller.scrollHeight;
    for (const message of frame.messages.slice().reverse()) {
      if (messages.has(message.id)) continue;
      const li = buildMessage(message);
      list.insertBefore(li, list.firstElementChild);
      if (li.nextElementSibling) markContinuation(li.nextElementSibling);
      markContinuation(li);
    }
    scroller.scrollTop += scroller.scrollHeight - height;
    setHasMore(frame.has_more);
    loadingOlder = false;
    if (pendingJump && pendingJump()) pendingJump = null;
    return;
  }
  if ("user" in frame && (frame.user || "") !== ME) {
    onIdentityChanged(frame.user);
    return;
  }
  badge.update("open");
  const stick = nearBottom() || messages.size === 0;
  if (frame.after === undefined) {
    // A fresh start (first connect, or a reconnect that had seen nothing).
    const unsent = (li) => li.classList.contains("is-pending") || li.classList.contains("is-failed");
    list.replaceChildren(...[...list.children].filter(unsent));
    messages.clear();
    setHasMore(frame.has_more);
  }
  for (const message of frame.messages) addMessage(message);
  if (frame.seq !== undefined) lastSeq = Math.max(lastSeq, frame.seq);
  if (frame.last_read !== undefined && lastRead === null) {
    lastRead = frame.last_read;
    readSent = frame.last_read;
    placeDivider();
  }
  if (stick) scrollToBottom();
  jumpToLinkedMessage();
  flushOutbox();
  markRead();
}

/** Once, on the first history: a link to #message-<id> (search, notifications) scrolls there. */
let linkedMessage = Number((window.location.hash.match(/^#message-(\d+)$/) || [])[1]) || null;
function jumpToLinkedMessage() {
  if (linkedMessage === null) return;
  const id = linkedMessage;
  linkedMessage = null;
  jumpToMessage(id);
}

function setHasMore(hasMore) {
  loadOlder.hidden = !hasMore;
  historyStart.hidden = hasMore;
}

function requestOlder() {
  if (loadingOlder || loadOlder.hidden) return;
  const oldest = Math.min(...messages.keys());
  if (!Number.isFinite(oldest)) return;
  loadingOlder = socket.send({ type: "history", before: oldest });
}

function onPresence(frame) {
  for (const name of frame.users) peopleSeen.add(name);
  people.replaceChildren();
  for (const name of frame.users) {
    const li = document.createElement("li");
    const dot = document.createElement("span");
    dot.className = "online-dot";
    dot.setAttribute("aria-hidden", "true");
    const label = document.createElement("span");
    label.textContent = name === ME ? `${name} (you)` : name;
    li.append(dot, label);
    people.append(li);
  }
  onlineCount.textContent = String(frame.users.length);
  onlineSummary.textContent = `${frame.users.length} online`;
  onlineSummary.title = frame.users.join(", ");
}

function renderTyping() {
  const names = [...typists.keys()];
  if (names.length === 0) typingLine.textContent = "";
  else if (names.length === 1) typingLine.textContent = `${names[0]} is typing…`;
  else if (names.length <= 3) typingLine.textContent = `${names.join(", ")} are typing…`;
  else typingLine.textContent = "Several people are typing…";
}

function onTyping(frame) {
  if (frame.user === ME) return;
  clearTimeout(typists.get(frame.user));
  typists.set(
    frame.user,
    setTimeout(() => {
      typists.delete(frame.user);
      renderTyping();
    }, TYPING_SHOW_MS),
  );
  renderTyping();
}

// not_found: an attachment that is not (or no longer) the sender's to attach, or a reply to a
// message deleted meanwhile.
const REFUSALS = new Set([
  "rate_limited",
  "muted",
  "too_long",
  "empty",
  "login_required",
  "invalid",
  "not_found",
]);

function onError(frame) {
  const detail = frame.detail || frame.message || frame.code;
  if (REFUSALS.has(frame.code)) {
    // Frames are answered in order: the refusal is for the oldest message still in flight.
    for (const [clientId, entry] of outbox) {
      if (!entry.sent) continue;
      outbox.delete(clientId);
      saveOutbox();
      const stick = nearBottom();
      markFailed(entry.li, entry.text, detail, entry.attachments);
      if (stick) scrollToBottom();
      flushOutbox(); // one less in flight: the next may go
      return; // said under the message itself: no toast over it
    }
  }
  showToast(detail);
}

function actionButton(label, name, onClick) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = `button-quiet failure-${name}`;
  button.textContent = label;
  button.addEventListener("click", onClick);
  return button;
}

/** Show under `li` why it was not sent, with Retry (send it again) and Dismiss (drop it). */
function markFailed(li, text, reason, attachments = []) {
  li.classList.remove("is-pending");
  li.classList.add("is-failed");
  li.querySelector(".message-failure")?.remove();
  const note = document.createElement("div");
  note.className = "message-failure";
  const why = document.createElement("span");
  why.textContent = `Not sent: ${reason}`;
  const retry = actionButton("Retry", "retry", () => {
    note.remove();
    li.classList.remove("is-failed");
    li.classList.add("is-pending");
    outbox.set(newClientId(), { text, li, sent: false, replyTo: null, attachments });
    saveOutbox();
    flushOutbox();
  });
  const dismiss = actionButton("Dismiss", "dismiss", () => li.remove());
  note.append(why, retry, dismiss);
  li.querySelector(".message-body").append(note);
}

/** The socket is not who the page was rendered for (`user`: the socket's user, or null). */
function onIdentityChanged(user) {
  signedOut = true;
  socket.close();
  for (const entry of outbox.values()) entry.sent = false;
  people.replaceChildren(); // who is here is no longer known to this page
  onlineCount.textContent = "–";
  onlineSummary.textContent = "";
  if (textarea) textarea.disabled = true;
  composer?.querySelector("[data-send]")?.setAttribute("disabled", "");
  if (ME) {
    badge.show("signed-out", user ? `Logged in as ${user} now` : "Signed out");
    const unsent = outbox.size
      ? ` ${outbox.size} unsent message${outbox.size === 1 ? " waits" : "s wait"} for you here.`
      : "";
    showSignedOut(`${user ? ` You are now logged in as ${user}.` : ""}${unsent}`);
  } else {
    badge.show("signed-out", "Logged in elsewhere: reload");
  }
}

function onFrame(frame) {
  switch (frame.type) {
    case "history":
      onHistory(frame);
      break;
    case "message": {
      const stick = nearBottom() || frame.user === ME;
      const known = messages.has(frame.id);
      addMessage(frame, { flash: frame.user !== ME });
      if (!known && frame.user !== ME) attention.messageArrived(frame);
      if (frame.seq) lastSeq = Math.max(lastSeq, frame.seq);
      typists.delete(frame.user);
      renderTyping();
      if (stick) scrollToBottom();
      markRead();
      break;
    }
    case "edited": {
      const known = messages.get(frame.id);
      if (known) {
        known.frame.text = frame.text;
        updateText(known.li, frame.text);
      }
      if (frame.seq) lastSeq = Math.max(lastSeq, frame.seq);
      break;
    }
    case "deleted": {
      const known = messages.get(frame.id);
      if (known) {
        const next = known.li.nextElementSibling;
        known.li.remove();
        messages.delete(frame.id);
        if (next) markContinuation(next);
        if (editing === frame.id) cancelEdit();
      }
      markQuotesDeleted(list, frame.id);
      showUnread();
      if (frame.seq) lastSeq = Math.max(lastSeq, frame.seq);
      break;
    }
    case "reactions": {
      const known = messages.get(frame.id);
      if (known) {
        known.frame.reactions = frame.reactions;
        showReactions(known.frame, known.li);
      }
      if (frame.seq) lastSeq = Math.max(lastSeq, frame.seq);
      break;
    }
    case "presence":
      onPresence(frame);
      break;
    case "notify":
      attention.onNotifyFrame(frame);
      break;
    case "typing":
      onTyping(frame);
      break;
    case "member":
      // A membership change of a private room: members.js shows it (a numbered event, replayed).
      if (frame.seq) lastSeq = Math.max(lastSeq, frame.seq);
      app.dispatchEvent(new CustomEvent("chat:member", { detail: frame }));
      break;
    case "error":
      onError(frame);
      break;
    default:
      break;
  }
}

const socket = new ReconnectingSocket(
  () => wsUrl(`/ws/chat/${ROOM}/`, lastId ? { after: lastId, seq: lastSeq || undefined } : {}),
  {
    onMessage: onFrame,
    // 4404: the room is gone (deleted while the page was open); reconnecting cannot bring it back.
    // 4403 (in DEFAULT_FINAL_CODES): not, or no longer, a member of this private room.
    finalCodes: [...DEFAULT_FINAL_CODES, 4404],
    onStateChange: (state, detail) => {
      if (signedOut) return;
      if (state !== "open") for (const entry of outbox.values()) entry.sent = false;
      if (state === "closed" && detail.code === 4401 && ME) {
        onIdentityChanged(null);
        return;
      }
      // "Live" only once the history frame has said who this socket is (see onHistory).
      badge.update(state === "open" ? "connecting" : state, detail);
      if (textarea) textarea.disabled = state === "closed";
    },
  },
);

const attention = new Attention(app, {
  me: ME,
  roomName:
    app.dataset.kind === "public" ? `#${ROOM}` : (app.querySelector(".chat-header h1")?.textContent || ROOM).trim(),
  send: (frame) => socket.send(frame),
  onOpenMessage: (id) => jumpToMessage(id),
});

// --- Sending --------------------------------------------------------------------------------

function newClientId() {
  return (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`).slice(0, 36);
}

/** Keep the outbox's texts in sessionStorage (this tab only), for a reload or a new login. */
function saveOutbox() {
  try {
    const items = [...outbox].map(([clientId, entry]) => ({
      client_id: clientId,
      text: entry.text,
      reply_to: entry.replyTo,
      attachments: entry.attachments,
    }));
    if (items.length) sessionStorage.setItem(OUTBOX_KEY, JSON.stringify(items));
    else sessionStorage.removeItem(OUTBOX_KEY);
  } catch {
    // Storage disabled or full: the outbox still lives in the page.
  }
}

/** The messages a previous visit of this page (same tab, same user) could not send. */
function restoreOutbox() {
  let items = [];
  try {
    items = JSON.parse(sessionStorage.getItem(OUTBOX_KEY) || "[]");
  } catch {
    return;
  }
  for (const item of Array.isArray(items) ? items : []) {
    if (item && typeof item.text === "string" && typeof item.client_id === "string") {
      const replyTo = Number.isInteger(item.reply_to) ? item.reply_to : null;
      const files = Array.isArray(item.attachments) ? item.attachments : [];
      queueMessage(item.text, item.client_id, replyTo, files);
    }
  }
}

/** Send the messages waiting in the outbox that are not in flight yet, oldest first: at most
 * MAX_IN_FLIGHT unanswered (an echo or a refusal sends the next), one per SEND_SPACING_MS. */
function flushOutbox() {
  clearTimeout(flushTimer);
  flushTimer = null;
  if (socket.state !== "open" || signedOut) return;
  let inFlight = [...outbox.values()].filter((entry) => entry.sent).length;
  for (const [clientId, entry] of outbox) {
    if (entry.sent) continue;
    if (inFlight >= MAX_IN_FLIGHT) return;
    const wait = lastMessageSent + SEND_SPACING_MS - Date.now();
    if (wait > 0) {
      flushTimer = setTimeout(flushOutbox, wait);
      return;
    }
    const frame = { type: "message", text: entry.text, client_id: clientId };
    if (entry.replyTo !== null) frame.reply_to = entry.replyTo;
    if (entry.attachments.length) frame.attachments = entry.attachments.map((file) => file.id);
    entry.sent = socket.send(frame);
    if (!entry.sent) return;
    lastMessageSent = Date.now();
    inFlight += 1;
  }
}

/** Show `text` as pending and put it in the outbox (sent now if connected, else on reconnect). */
function queueMessage(text, clientId = newClientId(), replyTo = null, attachments = []) {
  const li = renderMessage(
    { id: undefined, user: ME, text, ts: new Date().toISOString(), kind: "message" },
    { me: ME },
  );
  renderAttachments(li, attachments);
  li.removeAttribute("id");
  delete li.dataset.id;
  li.classList.add("is-pending");
  list.append(li);
  outbox.set(clientId, { text, li, sent: false, replyTo, attachments });
  saveOutbox();
  scrollToBottom();
}

function sendMessage(text, replyTo = null, attachments = []) {
  queueMessage(text, newClientId(), replyTo, attachments);
  flushOutbox();
}

function startReply(frame) {
  if (!textarea || !replying) return;
  if (editing !== null) cancelEdit();
  replying.start(frame);
  textarea.focus();
}

function startEdit(id) {
  const known = messages.get(id);
  if (!known || !textarea) return;
  if (replying) replying.target = null;
  editing = id;
  textarea.value = known.frame.text;
  textarea.focus();
  composerMode.replaceChildren();
  const label = document.createElement("span");
  label.className = "composer-editing";
  label.textContent = "Editing your message — Enter saves, Esc cancels";
  composerMode.append(label);
  autosize();
}

function cancelEdit() {
  editing = null;
  if (!textarea) return;
  textarea.value = "";
  composerMode.innerHTML = composerHint;
  autosize();
}

function autosize() {
  textarea.style.height = "auto";
  textarea.style.height = `${Math.min(textarea.scrollHeight, 160)}px`;
}

function submit() {
  const text = textarea.value;
  if (editing === null && tray && tray.busy()) {
    showToast("Wait for the upload to finish, or remove it.");
    return;
  }
  const files = editing === null && tray ? tray.ready() : [];
  if (!text.trim() && files.length === 0) return;
  if (editing !== null) {
    if (!socket.send({ type: "edit", id: editing, text })) {
      showToast("Not connected; try again in a moment.");
      return;
    }
    cancelEdit();
    return;
  }
  sendMessage(text, replying && replying.target ? replying.target.id : null, files);
  if (replying) replying.cancel();
  if (tray) tray.clear();
  textarea.value = "";
  autosize();
}

if (composer) {
  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    } else if (event.key === "Escape" && editing !== null) {
      event.preventDefault();
      cancelEdit();
    } else if (event.key === "Escape" && replying && replying.cancel()) {
      event.preventDefault();
    } else if (event.key === "ArrowUp" && textarea.value === "") {
      const mine = [...messages.values()]
        .filter(({ frame }) => frame.user === ME && frame.kind !== "announcement")
        .sort((a, b) => b.frame.id - a.frame.id)[0];
      if (mine && Date.now() - new Date(mine.frame.ts).getTime() < EDIT_WINDOW_MS) {
        event.preventDefault();
        startEdit(mine.frame.id);
      }
    }
  });
  textarea.addEventListener("input", () => {
    autosize();
    const now = Date.now();
    if (editing === null && textarea.value && now - lastTypingSent > TYPING_SEND_MS) {
      if (socket.send({ type: "typing" })) lastTypingSent = now;
    }
  });
  // A private room's members are in its members panel (kept current by members.js).
  const roomPeople = () => [
    ...peopleSeen,
    ...[...app.querySelectorAll("[data-member]")].map((row) => row.dataset.member),
  ];
  attachMentionComplete(textarea, roomPeople, { me: ME });
  textarea.focus();
}

loadOlder.addEventListener("click", requestOlder);
scroller.addEventListener("scroll", () => {
  if (scroller.scrollTop < 40) requestOlder();
  markRead();
});
document.addEventListener("visibilitychange", markRead);
if (ME) restoreOutbox();

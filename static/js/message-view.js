/**
 * message-view.js — how a chat message looks, shared by the room page (chat.js) and the console
 * (console.js). Message text is only ever set with textContent / text nodes: it is never parsed as
 * HTML, so `<script>` in a message shows as those characters. Its formatting (a small Markdown
 * subset, http(s) links, mentions) is markdown.js.
 *
 *   renderMessage(frame, {me, showRoom, actions}) -> <li> element
 *   updateText(li, text)           after an "edited" frame
 *   formatTime(iso) / formatDateTime(iso)   in the reader's time zone
 *   avatarColor(name)
 */

import { renderText } from "./markdown.js";

// The same rule as chat/services.py MENTION_RE: @ not preceded by a word character or @.
const MENTION = /(^|[^\p{L}\p{N}_@])@([\p{L}\p{N}_.+-]*[\p{L}\p{N}_])/gu;

export function formatTime(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function formatDateTime(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

export function avatarColor(name) {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return `hsl(${hash % 360} 55% 45%)`;
}

/** Whether `text` mentions `@me`. */
export function mentions(text, me) {
  if (!me) return false;
  for (const match of text.matchAll(MENTION)) if (match[2] === me) return true;
  return false;
}

/** Fill `target` with `text`, formatted (markdown.js), @mentions as <span class="mention">. */
export function fillText(target, text) {
  renderText(target, text);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * A message <li>. `actions` is a list of {label, name, onClick} buttons shown on hover.
 * The element carries data-id, data-user, data-ts for the caller.
 */
export function renderMessage(frame, { me = "", showRoom = false, actions = [] } = {}) {
  const li = element("li", "message");
  li.id = `message-${frame.id}`;
  li.dataset.id = frame.id;
  li.dataset.user = frame.user;
  li.dataset.ts = frame.ts;
  if (frame.kind === "announcement") li.classList.add("is-announcement");
  if (mentions(frame.text, me) && frame.user !== me) li.classList.add("mentions-me");

  const avatar = element("span", "avatar", (frame.user || "?").slice(0, 1));
  avatar.style.background = avatarColor(frame.user || "?");
  avatar.setAttribute("aria-hidden", "true");

  const meta = element("div", "message-meta");
  if (showRoom) meta.append(element("span", "room-tag", `#${frame.room}`));
  meta.append(element("span", "message-user", frame.user));
  if (frame.kind === "announcement") meta.append(element("span", "room-tag", "announcement"));
  const time = element("time", "message-time", formatTime(frame.ts));
  time.dateTime = frame.ts;
  time.title = formatDateTime(frame.ts);
  meta.append(time);

  // "(edited)" follows the text, not the meta line: a continuation message hides its meta line.
  const body = element("div", "message-body");
  const text = element("div", "message-text");
  fillText(text, frame.text);
  const edited = element("span", "message-edited", "(edited)");
  edited.hidden = !frame.edited;
  body.append(text, edited);

  li.append(avatar, meta, body);
  if (actions.length) {
    const bar = element("div", "message-actions");
    for (const action of actions) {
      const button = element("button", `action-${action.name}`, action.label);
      button.type = "button";
      button.addEventListener("click", () => action.onClick(frame, li));
      bar.append(button);
    }
    li.append(bar);
  }
  return li;
}

export function updateText(li, text) {
  fillText(li.querySelector(".message-text"), text);
  li.querySelector(".message-edited").hidden = false;
}

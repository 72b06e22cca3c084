/**
 * news.js — the /news/ page: live APRS news over ws/news/ (frames in aprs_news/protocol.py).
 *
 *   server -> {type: "news.recent", items: [ITEM...]}   on connect and when filters change
 *   server -> {type: "news.item", item: ITEM}            a new item: shown at the top
 *   server -> {type: "news.seen", id, seen_count, last_seen}   a re-sent item: "seen 3×"
 *   client -> {type: "news.recent", kind, prefix, group, limit}
 *
 * Filters (type, callsign/region prefix, bulletin group) apply at once in the page, are kept in
 * the URL, and ask the server for older matching items. Every text goes in with textContent,
 * never as HTML; times are shown in the reader's time zone.
 */
import { ReconnectingSocket, wsUrl } from "./socket.js";

const BULLETIN_KINDS = new Set(["bulletin", "announcement"]);
const KIND_LABELS = {
  bulletin: "Bulletin",
  announcement: "Announcement",
  status: "Status",
  object: "Object",
  weather: "Weather",
};
const MAX_ITEMS_PER_LIST = 200;
const RECENT_LIMIT = 100;

const page = document.querySelector("[data-news-page]");
const lists = {
  bulletins: page.querySelector('[data-news-list="bulletins"]'),
  reports: page.querySelector('[data-news-list="reports"]'),
};
const empties = {
  bulletins: page.querySelector('[data-news-empty="bulletins"]'),
  reports: page.querySelector('[data-news-empty="reports"]'),
};
const live = page.querySelector("[data-news-live]");
const form = page.querySelector("[data-news-filters]");
const kindInput = form.querySelector("[data-filter-kind]");
const prefixInput = form.querySelector("[data-filter-prefix]");
const groupInput = form.querySelector("[data-filter-group]");
const itemTemplate = document.getElementById("news-item-template");
const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

function currentFilters() {
  return {
    kind: kindInput.value,
    prefix: prefixInput.value.trim().toUpperCase(),
    group: groupInput.value,
  };
}

function matches(element, filters) {
  const { kind, source, group } = element.dataset;
  if (filters.kind && kind !== filters.kind) return false;
  if (filters.prefix && !source.startsWith(filters.prefix)) return false;
  if (filters.group && group !== filters.group) return false;
  return true;
}

function localTime(timeElement) {
  const when = new Date(timeElement.getAttribute("datetime"));
  if (Number.isNaN(when.getTime())) return;
  timeElement.textContent = timeFormat.format(when);
  timeElement.title = when.toISOString();
}

function setSeen(element, count, lastSeen) {
  const seen = element.querySelector(".news-seen");
  seen.dataset.seenCount = String(count);
  seen.textContent = `seen ${count}×`;
  seen.hidden = count < 2;
  if (lastSeen) seen.title = `last heard ${timeFormat.format(new Date(lastSeen))}`;
}

function renderItem(item) {
  const element = itemTemplate.content.firstElementChild.cloneNode(true);
  element.id = `news-${item.id}`;
  element.classList.add(`news-${item.kind}`);
  element.dataset.newsId = String(item.id);
  element.dataset.kind = item.kind;
  element.dataset.source = item.source;
  element.dataset.group = item.group || "";
  element.querySelector(".news-kind").textContent = KIND_LABELS[item.kind] || item.kind;
  const addressee = element.querySelector(".news-addressee");
  if (item.addressee) addressee.textContent = item.addressee;
  else addressee.remove();
  const source = element.querySelector(".news-source");
  source.textContent = item.source;
  source.href = `?prefix=${encodeURIComponent(item.source)}`;
  source.title = `Only ${item.source}`;
  const time = element.querySelector(".news-time");
  time.setAttribute("datetime", item.received);
  localTime(time);
  element.querySelector(".news-text").textContent = item.text;
  element.querySelector(".news-raw code").textContent = item.raw;
  setSeen(element, item.seen_count, item.last_seen);
  return element;
}

function sortKey(element) {
  const time = element.querySelector(".news-time").getAttribute("datetime");
  return [Date.parse(time) || 0, Number(element.dataset.newsId)];
}

function isNewer(a, b) {
  return a[0] !== b[0] ? a[0] > b[0] : a[1] > b[1];
}

/** Put an item in its list, in time order, unless it is there already; true if it was added. */
function place(item, { flash = false } = {}) {
  if (document.getElementById(`news-${item.id}`)) return false;
  const listName = BULLETIN_KINDS.has(item.kind) ? "bulletins" : "reports";
  const list = lists[listName];
  const element = renderItem(item);
  element.hidden = !matches(element, currentFilters());
  const key = sortKey(element);
  const before = [...list.children].find((child) => isNewer(key, sortKey(child)));
  list.insertBefore(element, before || null);
  while (list.children.length > MAX_ITEMS_PER_LIST) list.lastElementChild.remove();
  if (flash) element.classList.add("is-new");
  refreshEmpty();
  return true;
}

function refreshEmpty() {
  for (const [name, list] of Object.entries(lists)) {
    const visible = [...list.children].some((child) => !child.hidden);
    empties[name].hidden = visible;
    empties[name].textContent = list.children.length ? "Nothing matches the filters." : "Nothing yet.";
  }
}

function applyFilters() {
  const filters = currentFilters();
  for (const list of Object.values(lists)) {
    for (const element of list.children) element.hidden = !matches(element, filters);
  }
  refreshEmpty();
  const url = new URL(window.location.href);
  for (const [name, value] of Object.entries(filters)) {
    if (value) url.searchParams.set(name, value);
    else url.searchParams.delete(name);
  }
  history.replaceState(null, "", url);
}

function requestRecent(socket) {
  const filters = currentFilters();
  const frame = { type: "news.recent", limit: RECENT_LIMIT };
  for (const [name, value] of Object.entries(filters)) if (value) frame[name] = value;
  socket.send(frame);
}

function handleFrame(frame) {
  if (frame.type === "news.recent") {
    for (const item of frame.items) place(item);
  } else if (frame.type === "news.item") {
    place(frame.item, { flash: true });
  } else if (frame.type === "news.seen") {
    const element = document.getElementById(`news-${frame.id}`);
    if (element) setSeen(element, frame.seen_count, frame.last_seen);
  } else if (frame.type === "error") {
    console.warn("news: server error", frame.code, frame.detail);
  }
}

for (const time of page.querySelectorAll(".news-time")) localTime(time);
refreshEmpty();

const socket = new ReconnectingSocket(() => wsUrl("/ws/news/"), {
  onOpen: (s) => {
    const filters = currentFilters();
    if (filters.kind || filters.prefix || filters.group) requestRecent(s);
  },
  onMessage: handleFrame,
  onStateChange: (state) => {
    live.dataset.state = state;
    live.textContent = { open: "live", connecting: "connecting…", reconnecting: "reconnecting…" }[state] || state;
  },
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  applyFilters();
  requestRecent(socket);
});
for (const input of [kindInput, groupInput]) {
  input.addEventListener("change", () => {
    applyFilters();
    requestRecent(socket);
  });
}
let typing = null;
prefixInput.addEventListener("input", () => {
  applyFilters();
  clearTimeout(typing);
  typing = setTimeout(() => requestRecent(socket), 300);
});

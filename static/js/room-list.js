/**
 * room-list.js — keeps the room list's online and unread numbers current: while the tab is
 * visible it asks GET /api/chat/rooms/ every POLL_MS ({"rooms": {slug: {online, unread}}}), and
 * once at once: the page may have been rendered while the room you came from was still counting
 * you, or be shown again from the browser's back/forward cache.
 */

const POLL_MS = 10000;
const list = document.querySelector("[data-room-list]");

function render(rooms) {
  for (const card of list.querySelectorAll("[data-room]")) {
    const counts = rooms[card.dataset.room];
    if (!counts) continue;
    const online = card.querySelector("[data-online]");
    online.lastChild.textContent = `${counts.online} online`;
    online.querySelector(".online-dot").classList.toggle("is-empty", counts.online === 0);
    let badge = card.querySelector("[data-unread]");
    if (counts.unread > 0) {
      if (!badge) {
        badge = document.createElement("span");
        badge.className = "unread-badge";
        badge.dataset.unread = "";
        card.querySelector(".room-card-title").append(badge);
      }
      badge.textContent = counts.unread > 99 ? "99+" : String(counts.unread);
      badge.title = `${counts.unread} unread`;
    } else if (badge) {
      badge.remove();
    }
  }
}

async function refresh() {
  if (document.visibilityState !== "visible") return;
  try {
    const response = await fetch("/api/chat/rooms/", { headers: { Accept: "application/json" } });
    if (response.ok) render((await response.json()).rooms);
  } catch {
    // Offline for a moment: the next poll tries again.
  }
}

if (list) {
  setInterval(refresh, POLL_MS);
  document.addEventListener("visibilitychange", refresh);
  window.addEventListener("pageshow", refresh); // on load, and when shown again from the cache
}

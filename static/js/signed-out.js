/**
 * signed-out.js — tells the reader, once, that the page's login is gone: the session ended (logged
 * out in another tab, password changed, server reset) or another account logged in meanwhile.
 * Shows the banner of templates/base.html (data-signed-out, rendered for logged-in pages) with a
 * link to log in again and come back here. The chat page and the notification bell call it.
 *
 *   import { showSignedOut } from "./signed-out.js";
 *   showSignedOut("You are now logged in as bob.");   // detail is optional
 */

export function showSignedOut(detail = "") {
  const banner = document.querySelector("[data-signed-out]");
  if (!banner) return;
  const text = banner.querySelector("[data-signed-out-detail]");
  if (text && detail) text.textContent = ` ${detail}`;
  const login = banner.querySelector("a[data-login]");
  if (login) {
    const url = new URL(login.href, window.location.href);
    url.searchParams.set("next", window.location.pathname + window.location.search);
    login.href = url.toString();
  }
  banner.hidden = false;
  document.body.classList.add("is-signed-out");
}

/**
 * toast.js — the page's one short message line (`[data-toast]`), shown for four seconds.
 *
 *   import { showToast } from "./toast.js";
 *   showToast("Not connected.");
 *
 * Text only (textContent): what a server or a user wrote is never parsed as HTML.
 */

const SHOW_MS = 4000;
let timer = null;

export function showToast(text) {
  const toast = document.querySelector("[data-toast]");
  if (!toast) return;
  toast.textContent = text;
  toast.hidden = false;
  clearTimeout(timer);
  timer = setTimeout(() => (toast.hidden = true), SHOW_MS);
}

/**
 * copy-button.js — a button that copies a field's value to the clipboard:
 *
 *   <input id="new-token" readonly value="...">
 *   <button type="button" data-copy="#new-token">Copy</button>
 *
 * The button says "Copied" for a moment (or "Press Ctrl+C" when the browser refuses the
 * clipboard, with the text selected so the keyboard shortcut works). Clicking the field selects it.
 */

const FEEDBACK_MS = 2000;

async function copy(button, field) {
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  field.focus();
  field.select();
  let copied = false;
  try {
    await navigator.clipboard.writeText(field.value);
    copied = true;
  } catch {
    copied = document.execCommand?.("copy") ?? false; // older browsers, or no clipboard permission
  }
  button.textContent = copied ? "Copied" : "Press Ctrl+C";
  button.classList.toggle("is-done", copied);
  clearTimeout(button.resetTimer);
  button.resetTimer = setTimeout(() => {
    button.textContent = label;
    button.classList.remove("is-done");
  }, FEEDBACK_MS);
}

for (const button of document.querySelectorAll("[data-copy]")) {
  const field = document.querySelector(button.dataset.copy);
  if (!field) continue;
  button.addEventListener("click", () => copy(button, field));
  field.addEventListener("click", () => field.select());
}

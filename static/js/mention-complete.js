/**
 * mention-complete.js — `@` autocomplete in the composer: typing `@` and the start of a name
 * offers the room's people (the names the page knows: members of a private room or DM, who is
 * online, who wrote the messages shown), up to MAX_OFFERED, best match first.
 *
 *   attachMentionComplete(textarea, () => ["alice", "bob"], {me: "alice"})
 *
 * ↑/↓ move, Enter or Tab takes the highlighted name (as "@name "), Esc closes; a click takes a
 * name too. While the list is open its keys do not reach the composer (Enter does not send).
 * The list is a listbox tied to the textarea (aria-controls, aria-activedescendant).
 */

const MAX_OFFERED = 8;
// "@" and a partial name right before the caret; "@" not preceded by a word character or "@".
const PARTIAL = /(^|[^\p{L}\p{N}_@])@([\p{L}\p{N}_.+-]*)$/u;

export function attachMentionComplete(textarea, names, { me = "" } = {}) {
  const menu = document.createElement("ul");
  menu.className = "mention-menu";
  menu.id = `${textarea.id || "composer"}-mentions`;
  menu.setAttribute("role", "listbox");
  menu.hidden = true;
  textarea.after(menu);
  textarea.setAttribute("aria-controls", menu.id);
  textarea.setAttribute("aria-autocomplete", "list");
  let offered = [];
  let selected = 0;
  let start = -1; // where the "@" is

  function close() {
    menu.hidden = true;
    offered = [];
    textarea.removeAttribute("aria-activedescendant");
  }

  function show() {
    menu.replaceChildren(
      ...offered.map((name, index) => {
        const li = document.createElement("li");
        li.id = `${menu.id}-${index}`;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", index === selected ? "true" : "false");
        li.dataset.name = name;
        li.textContent = name;
        li.addEventListener("mousedown", (event) => {
          event.preventDefault(); // keep the focus in the textarea
          take(name);
        });
        return li;
      }),
    );
    menu.hidden = false;
    textarea.setAttribute("aria-activedescendant", `${menu.id}-${selected}`);
  }

  function take(name) {
    const caret = textarea.selectionStart;
    const before = textarea.value.slice(0, start);
    const after = textarea.value.slice(caret);
    const inserted = `@${name} `;
    textarea.value = before + inserted + after;
    const position = before.length + inserted.length;
    textarea.setSelectionRange(position, position);
    close();
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function update() {
    const caret = textarea.selectionStart;
    if (caret !== textarea.selectionEnd) return close();
    const match = textarea.value.slice(0, caret).match(PARTIAL);
    if (!match) return close();
    const partial = match[2].toLowerCase();
    start = caret - match[2].length - 1;
    const candidates = [...new Set(names())].filter((name) => name && name !== me);
    const prefix = candidates.filter((name) => name.toLowerCase().startsWith(partial));
    const inside = candidates.filter(
      (name) => !name.toLowerCase().startsWith(partial) && name.toLowerCase().includes(partial),
    );
    offered = [...prefix.sort(), ...inside.sort()].slice(0, MAX_OFFERED);
    if (offered.length === 0) return close();
    selected = Math.min(selected, offered.length - 1);
    show();
  }

  textarea.addEventListener("input", () => {
    selected = 0;
    update();
  });
  textarea.addEventListener("click", update);
  textarea.addEventListener("blur", close);
  // Capture: runs before the composer's own keydown handler (Enter sends, Esc cancels an edit).
  textarea.addEventListener(
    "keydown",
    (event) => {
      if (menu.hidden || offered.length === 0) return;
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        selected = (selected + (event.key === "ArrowDown" ? 1 : -1) + offered.length) % offered.length;
        show();
      } else if ((event.key === "Enter" && !event.shiftKey) || event.key === "Tab") {
        take(offered[selected]);
      } else if (event.key === "Escape") {
        close();
      } else {
        return;
      }
      event.preventDefault();
      event.stopImmediatePropagation();
    },
    true,
  );
}

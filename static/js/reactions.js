/**
 * reactions.js — a message's reactions (chat/protocol.py REACTION_EMOJI, frames `reactions` and
 * the `reactions` field of a `message`): one button per emoji with its count, the people in its
 * title, pressed when you are one of them; and the small picker the "React" action opens.
 *
 *   renderReactions(li, reactions, {me, onToggle})  fill li's reactions bar (created if needed)
 *   openPicker(li, emojiSet, onPick)                 show the picker under a message
 *
 * onToggle(emoji, add) / onPick(emoji) send the frame; the bar changes when the server's
 * `reactions` frame arrives (for everyone alike). Text only: names are set with textContent.
 */

export function renderReactions(li, reactions, { me = "", onToggle = null } = {}) {
  let bar = li.querySelector(".message-reactions");
  if (!reactions || reactions.length === 0) {
    if (bar) bar.remove();
    return;
  }
  if (!bar) {
    bar = document.createElement("div");
    bar.className = "message-reactions";
    const body = li.querySelector(".message-body");
    body.after(bar);
  }
  bar.replaceChildren(
    ...reactions.map(({ emoji, users }) => {
      const mine = users.includes(me);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "reaction";
      button.dataset.emoji = emoji;
      button.setAttribute("aria-pressed", mine ? "true" : "false");
      button.title = users.join(", ");
      button.setAttribute("aria-label", `${emoji} ${users.length}: ${users.join(", ")}`);
      const count = document.createElement("span");
      count.className = "reaction-count";
      count.textContent = String(users.length);
      button.append(document.createTextNode(`${emoji} `), count);
      if (me && onToggle) button.addEventListener("click", () => onToggle(emoji, !mine));
      else button.disabled = true;
      return button;
    }),
  );
}

export function openPicker(li, emojiSet, onPick) {
  const open = li.querySelector(".reaction-picker");
  if (open) {
    open.remove();
    return;
  }
  const picker = document.createElement("div");
  picker.className = "reaction-picker";
  picker.setAttribute("role", "group");
  picker.setAttribute("aria-label", "Add a reaction");
  for (const emoji of emojiSet) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.pick = emoji;
    button.textContent = emoji;
    button.addEventListener("click", () => {
      picker.remove();
      onPick(emoji);
    });
    picker.append(button);
  }
  li.append(picker);
  picker.querySelector("button").focus();
  picker.addEventListener("keydown", (event) => {
    if (event.key === "Escape") picker.remove();
  });
}

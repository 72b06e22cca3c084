/**
 * replies.js — replying to a message: the quote a reply shows (`reply_to` of a `message` frame),
 * the composer's "Replying to …" line, and jumping to the original.
 *
 *   renderQuote(li, replyTo, onJump)   put the quote above the message's text
 *   markQuotesDeleted(list, id)        the original was deleted: its quotes say so
 *   jumpTo(id, {find, loadOlder})      scroll to the original, loading older pages until found
 */

const JUMP_MAX_PAGES = 20;

/** The quote as one plain line: Markdown markers and line breaks would only be noise here. */
function quoteText(replyTo) {
  if (replyTo.deleted) return "Deleted message";
  return replyTo.text
    .replace(/```/g, " ")
    .replace(/\*\*|`/g, "")
    .replace(/^>\s?/gm, "")
    .replace(/\s+/g, " ")
    .trim();
}

export function renderQuote(li, replyTo, onJump) {
  if (!replyTo) return;
  const quote = document.createElement("button");
  quote.type = "button";
  quote.className = "message-quote";
  quote.dataset.replyTo = replyTo.id;
  quote.title = "Show the original";
  const who = document.createElement("span");
  who.className = "quote-user";
  who.textContent = `↩ ${replyTo.user}`;
  const text = document.createElement("span");
  text.className = "quote-text";
  text.textContent = quoteText(replyTo);
  if (replyTo.deleted) quote.classList.add("is-deleted");
  quote.append(who, text);
  quote.addEventListener("click", () => onJump(replyTo.id));
  li.querySelector(".message-body").before(quote);
}

export function markQuotesDeleted(list, id) {
  for (const quote of list.querySelectorAll(`.message-quote[data-reply-to="${Number(id)}"]`)) {
    quote.classList.add("is-deleted");
    quote.querySelector(".quote-text").textContent = "Deleted message";
  }
}

/**
 * Scroll to message `id` and flash it. When it is not loaded yet, ask for older pages (at most
 * JUMP_MAX_PAGES) and try again as each arrives: `loadOlder()` returns false when there is
 * nothing older (or no connection); call the returned `retry` after each older page.
 */
export function jumpTo(id, { find, loadOlder, onMissing }) {
  let pages = 0;
  const attempt = () => {
    const li = find(id);
    if (li) {
      li.scrollIntoView({ block: "center" });
      li.classList.remove("is-flash");
      void li.offsetWidth; // restart the animation
      li.classList.add("is-flash");
      return true;
    }
    if (pages >= JUMP_MAX_PAGES || !loadOlder()) {
      onMissing();
      return true;
    }
    pages += 1;
    return false;
  };
  return attempt() ? null : attempt;
}

/** The composer's reply state: which message the next one answers, shown above the box. */
export class ReplyComposer {
  constructor(modeLine, restore) {
    this.modeLine = modeLine;
    this.restore = restore; // puts the composer's usual hint back
    this.target = null;
  }

  start(frame) {
    this.target = { id: frame.id, user: frame.user, text: frame.text };
    this.modeLine.replaceChildren();
    const label = document.createElement("span");
    label.className = "composer-replying";
    label.dataset.replying = frame.id;
    label.textContent = `Replying to ${frame.user}: ${frame.text.slice(0, 80)} — Esc cancels`;
    this.modeLine.append(label);
  }

  cancel() {
    if (this.target === null) return false;
    this.target = null;
    this.restore();
    return true;
  }
}

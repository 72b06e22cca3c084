/**
 * markdown.js — message text as people expect to read it, built as DOM nodes: no user text is
 * ever parsed as HTML (no innerHTML), so `<script>` shows as those characters.
 *
 *   renderText(target, text)   fill `target` with `text`, formatted
 *
 * The subset (what chats commonly support, nothing that can hide or restyle the page):
 *
 *   **bold**   *italic* or _italic_   `inline code`   > a quote (lines starting with ">")
 *   ```
 *   a code block (between lines of three backticks; the rest of the message if never closed)
 *   ```
 *
 * Links: http:// and https:// addresses become links (target=_blank, rel="noopener noreferrer");
 * no other scheme is ever linked (javascript:, data:, … stay text). Trailing punctuation is not
 * part of a link, nor is a closing parenthesis that has no opening one in the address.
 * Mentions: @name as <span class="mention"> (the same rule as chat/services.py MENTION_RE).
 * Nothing inside code is formatted.
 */

// 1: backticks, 2: code, 3: bold, 4: *italic*, 5: _italic_, 6: an address, 7: a mentioned name.
const INLINE = new RegExp(
  [
    "(`+)([^`\\n]+?)\\1",
    "\\*\\*(?=\\S)(.+?)(?<=\\S)\\*\\*",
    "(?<![\\p{L}\\p{N}_*])\\*(?=[^\\s*])([^*\\n]*?[^\\s*])\\*(?![\\p{L}\\p{N}_*])",
    "(?<![\\p{L}\\p{N}_])_(?=[^\\s_])([^_\\n]*?[^\\s_])_(?![\\p{L}\\p{N}_])",
    "(https?:\\/\\/[^\\s<>\"'`]+)",
    "(?<![\\p{L}\\p{N}_@])@([\\p{L}\\p{N}_.+-]*[\\p{L}\\p{N}_])",
  ].join("|"),
  "giu",
);
const FENCE = /^\s*```/;
const QUOTE = /^>\s?/;
const TRAILING = /[.,;:!?'"]+$/;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The address without punctuation that ends the sentence around it; "" if not http(s). */
function trimAddress(raw) {
  let address = raw.replace(TRAILING, "");
  while (address.endsWith(")") && (address.match(/\(/g) || []).length < (address.match(/\)/g) || []).length) {
    address = address.slice(0, -1).replace(TRAILING, "");
  }
  try {
    const url = new URL(address);
    return url.protocol === "http:" || url.protocol === "https:" ? address : "";
  } catch {
    return "";
  }
}

function link(address) {
  const anchor = element("a", "message-link", address);
  anchor.href = address;
  anchor.target = "_blank";
  anchor.rel = "noopener noreferrer";
  return anchor;
}

/** Append `text` to `target` with the inline formatting, links and mentions. */
function renderInline(target, text) {
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    let end = match.index + match[0].length;
    let node;
    if (match[2] !== undefined) {
      node = element("code", "md-code", match[2]);
    } else if (match[3] !== undefined) {
      node = element("strong");
      renderInline(node, match[3]);
    } else if (match[4] !== undefined || match[5] !== undefined) {
      node = element("em");
      renderInline(node, match[4] !== undefined ? match[4] : match[5]);
    } else if (match[6] !== undefined) {
      const address = trimAddress(match[6]);
      if (!address) continue;
      node = link(address);
      end = match.index + address.length;
    } else {
      node = element("span", "mention", `@${match[7]}`);
    }
    if (match.index > last) target.append(document.createTextNode(text.slice(last, match.index)));
    target.append(node);
    last = end;
  }
  if (last < text.length) target.append(document.createTextNode(text.slice(last)));
}

/** Fill `target` with `text`: code blocks, quotes and formatted runs of lines. */
export function renderText(target, text) {
  target.replaceChildren();
  const lines = text.split("\n");
  let run = [];
  const flush = () => {
    if (run.length) renderInline(target, run.join("\n"));
    run = [];
  };
  for (let index = 0; index < lines.length; index += 1) {
    const line = lines[index];
    if (FENCE.test(line)) {
      flush();
      const code = [];
      index += 1;
      while (index < lines.length && !FENCE.test(lines[index])) {
        code.push(lines[index]);
        index += 1;
      }
      const pre = element("pre", "md-block");
      pre.append(element("code", "", code.join("\n")));
      target.append(pre);
    } else if (QUOTE.test(line)) {
      flush();
      const quoted = [];
      while (index < lines.length && QUOTE.test(lines[index])) {
        quoted.push(lines[index].replace(QUOTE, ""));
        index += 1;
      }
      index -= 1;
      const quote = element("blockquote", "md-quote");
      renderInline(quote, quoted.join("\n"));
      target.append(quote);
    } else {
      run.push(line);
    }
  }
  flush();
}

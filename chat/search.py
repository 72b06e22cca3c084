"""Searching the messages a user may read: one interface, the database's own full-text search.

`search_messages(user, text, room=None, before=None)` finds the visible (not deleted) messages of
the rooms `user` may read (`chat.access.readable_rooms`; one room, checked with `require_member`,
when `room` is given) that contain every word of `text`, each word also as the start of a longer
one ("deplo" finds "deployed"), newest first, SEARCH_PAGE_SIZE at a time (`before`: the last id
of the previous page). The result::

    {"query": "deploy friday", "results": [{"id": 812, "room": "ops", "room_name": "Ops",
      "user": "alice", "ts": "…", "text": "…we deploy on Friday…", "highlights": [[5, 11], …]}],
     "has_more": false}

``highlights`` are [start, end) character offsets into ``text`` (a window of the message around the
first match when it is long), so a page marks them as text nodes or escaped template output and
never as HTML.

Backends, picked by the database in use (`connection.vendor`), both kept current by the database
itself (migration 0004):

- PostgreSQL: ``to_tsvector('simple', text) @@ to_tsquery('simple', 'deploy:* & friday:*')`` on a
  GIN expression index. The ``simple`` configuration (no stemming, no stop words) behaves the same
  for every language people write in.
- SQLite: an FTS5 table ``chat_message_fts`` (external content over ``chat_message``, tokenizer
  ``unicode61 remove_diacritics 2``) kept in step by triggers; the query ``"deploy"* "friday"*``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL

from chat import access, protocol
from chat.models import Message, Room
from chat.services import ChatError

SEARCH_PAGE_SIZE = 20
MAX_QUERY_LENGTH = 200
MAX_TERMS = 8
SNIPPET_LENGTH = 300  # characters of a long message shown around its first match
SNIPPET_LEAD = 80  # of which before the match

# Words: letters and digits (both backends split on everything else, "_" included).
TERM_RE = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class SearchQuery:
    """A user's search text, checked and split into words."""

    text: str
    terms: tuple[str, ...]

    @classmethod
    def parse(cls, text: Any) -> SearchQuery:
        if not isinstance(text, str):
            raise ChatError(protocol.INVALID, "The search must be text.")
        text = text.strip()
        if len(text) > MAX_QUERY_LENGTH:
            raise ChatError(
                protocol.TOO_LONG, f"A search has at most {MAX_QUERY_LENGTH} characters."
            )
        terms = tuple(dict.fromkeys(term.lower() for term in TERM_RE.findall(text)))
        if not terms:
            raise ChatError(protocol.EMPTY, "Type a word to search for.")
        return cls(text, terms[:MAX_TERMS])


def _postgresql_match(query: SearchQuery) -> RawSQL:
    table = connection.ops.quote_name(Message._meta.db_table)
    column = connection.ops.quote_name(Message._meta.get_field("text").column)
    tsquery = " & ".join(f"{term}:*" for term in query.terms)
    return RawSQL(
        f"to_tsvector('simple', {table}.{column}) @@ to_tsquery('simple', %s)",
        [tsquery],
        output_field=BooleanField(),
    )


def _sqlite_match(query: SearchQuery) -> RawSQL:
    table = connection.ops.quote_name(Message._meta.db_table)
    pk = connection.ops.quote_name(Message._meta.pk.column)
    match = " ".join(f'"{term}"*' for term in query.terms)
    return RawSQL(
        f"{table}.{pk} IN (SELECT rowid FROM chat_message_fts WHERE chat_message_fts MATCH %s)",
        [match],
        output_field=BooleanField(),
    )


_MATCHERS = {"postgresql": _postgresql_match, "sqlite": _sqlite_match}


def _match(query: SearchQuery) -> RawSQL:
    try:
        return _MATCHERS[connection.vendor](query)
    except KeyError:
        raise RuntimeError(
            f"chat search supports {sorted(_MATCHERS)}, not the database {connection.vendor!r}"
        ) from None


def highlights(text: str, terms: tuple[str, ...]) -> list[list[int]]:
    """The [start, end) spans of the words in `text` that start with one of `terms`, merged."""
    spans: list[list[int]] = []
    for term in terms:
        pattern = re.compile(rf"(?<![^\W_]){re.escape(term)}[^\W_]*", re.IGNORECASE)
        spans += [[m.start(), m.end()] for m in pattern.finditer(text)]
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


# The marks of the page's Markdown subset (static/js/markdown.js), which a result shows without:
# `code`, **bold**, *italic* and _italic_ keep their text; fence lines go; "> " quote marks go.
_INLINE_MARKS = re.compile(
    r"(`+)([^`\n]+?)\1"
    r"|\*\*(?=\S)(.+?)(?<=\S)\*\*"
    r"|(?<![\w*])\*(?=[^\s*])([^*\n]*?[^\s*])\*(?![\w*])"
    r"|(?<![\w])_(?=[^\s_])([^_\n]*?[^\s_])_(?![\w])"
)
_FENCE = re.compile(r"^\s*```.*$")
_QUOTE = re.compile(r"^>\s?")


def plain_text(text: str) -> str:
    """`text` as the page shows it, without its Markdown marks (a search result is plain text
    with the matches highlighted, not Markdown source)."""
    lines = []
    in_code = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            lines.append(line)
            continue
        line = _QUOTE.sub("", line)
        lines.append(
            _INLINE_MARKS.sub(lambda m: next(g for g in m.groups()[1:] if g is not None), line)
        )
    return "\n".join(lines)


def snippet(text: str, terms: tuple[str, ...]) -> tuple[str, list[list[int]]]:
    """A long message cut to a window around its first match (with "…" where cut) and the
    highlights within it."""
    spans = highlights(text, terms)
    if len(text) <= SNIPPET_LENGTH:
        return text, spans
    start = max(0, (spans[0][0] if spans else 0) - SNIPPET_LEAD)
    end = min(len(text), start + SNIPPET_LENGTH)
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(text) else ""
    shift = len(prefix) - start
    window = [
        [max(s, start) + shift, min(e, end) + shift] for s, e in spans if s < end and e > start
    ]
    return prefix + text[start:end] + suffix, window


def search_messages(
    user: Any, text: Any, room: Room | None = None, before: int | None = None
) -> dict:
    """Search the messages `user` may read (see the module docstring)."""
    query = SearchQuery.parse(text)
    rows = Message.objects.filter(deleted__isnull=True)
    if room is not None:
        access.require_member(user, room)
        rows = rows.filter(room=room)
    else:
        rows = rows.filter(room__in=access.readable_rooms(user))
    if before is not None:
        rows = rows.filter(id__lt=before)
    rows = rows.filter(_match(query)).select_related("room").order_by("-id")
    page = list(rows[: SEARCH_PAGE_SIZE + 1])
    results = []
    for message in page[:SEARCH_PAGE_SIZE]:
        shown, spans = snippet(plain_text(message.text), query.terms)
        results.append(
            {
                "id": message.pk,
                "room": message.room.slug,
                "room_name": message.room.display_name,
                "room_kind": message.room.kind,
                "user": message.username,
                "ts": message.created.isoformat(),
                "text": shown,
                "highlights": spans,
            }
        )
    return {"query": query.text, "results": results, "has_more": len(page) > SEARCH_PAGE_SIZE}


def marked_segments(text: str, spans: list[list[int]]) -> list[tuple[str, bool]]:
    """`text` cut into (part, is_match) pairs along `spans`, for a template to mark."""
    parts: list[tuple[str, bool]] = []
    last = 0
    for start, end in spans:
        if start > last:
            parts.append((text[last:start], False))
        parts.append((text[start:end], True))
        last = end
    if last < len(text):
        parts.append((text[last:], False))
    return parts

"""Text that every supported database can store.

PostgreSQL's text types cannot hold the NUL character (U+0000): a value containing one fails the
whole statement with `psycopg.DataError`, where SQLite stores it. No driver can store a lone
surrogate (U+D800-U+DFFF) either: it has no UTF-8 encoding, yet JSON's `"\\ud800"` escape decodes
to one. Text from clients is checked with `unstorable_character` and refused before any query
runs; text from machines that cannot be asked again (APRS packets) goes through `storable`.

    unstorable_character("a\\x00b")  -> "U+0000"
    storable("a\\x00b")              -> "a\\ufffdb"
"""

from __future__ import annotations

import re

__all__ = ["REPLACEMENT_CHARACTER", "storable", "unstorable_character"]

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT_CHARACTER = "\ufffd"


def unstorable_character(text: str) -> str | None:
    """The first character of `text` a database cannot store, as "U+XXXX"; None when there is
    none."""
    match = _UNSTORABLE.search(text)
    return None if match is None else f"U+{ord(match.group()):04X}"


def storable(text: str) -> str:
    """`text` with every character a database cannot store replaced by U+FFFD."""
    return _UNSTORABLE.sub(REPLACEMENT_CHARACTER, text)

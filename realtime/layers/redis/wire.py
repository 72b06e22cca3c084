"""What the Redis layer writes to Redis: key names, queue entries, inbox frames, payloads, scripts.

Key names
---------
Every key and pub/sub channel starts with the configured prefix (``asgi`` below). Each name has
one *routing token*, the part that decides which shard holds it (see ``shards.py``): the worker
channel, the group or the client id. On Redis Cluster the token is wrapped in a hash tag
(``asgi:q:{jobs.email}``), so every key of one queue, one group or one client's inbox lives in
one slot: the reliable-queue move (queue to in-flight list) and the scripts touch one slot only.
On one server or a list of servers the braces are left out.

    asgi:q:<channel>                 list    a worker channel's queue (entries, see below)
    asgi:f:<client>:<channel>        list    messages a client took from the queue, unacknowledged
    asgi:alive:<client>:<channel>    string  that client's lease on the channel (expires)
    asgi:fr:<channel>                set     clients that have an in-flight list for the channel
    asgi:g:<group>                   pub/sub a group's messages (SPUBLISH on a cluster)
    asgi:gw:<group>                  zset    the group's worker-channel members (score: joined)
    asgi:i:<client>                  pub/sub a client's inbox (frames, see below)
    asgi:m:<client>                  hash    memberships other processes gave the client's channels

Payloads and queue entries
--------------------------
A message is msgpack (``MessageCodec.pack``), optionally Fernet-encrypted (``seal``). A queue
entry puts its expiry first, as 13 ASCII digits of milliseconds since the epoch, so the send
script can drop expired entries without decoding anything::

    b"1767225600000" + sealed payload

Inbox frames
------------
What other processes publish to a client's inbox is one byte of kind, then NUL-separated fields
(names never contain NUL; the payload comes last, so it may)::

    b"m" channel b"\\0" queue-entry             a message for one of the client's channels
    b"a" group b"\\0" channel b"\\0" joined      a membership added (joined: repr of a float)
    b"d" group b"\\0" channel                   a membership removed

For example ``b"aroom.lobby\\x00specific.3f9a2c1b04d5!k2Jd\\x001767225600.25"``.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

from realtime.types import Message

EXPIRY_DIGITS = 13


class KeySpace:
    """Every key and pub/sub channel name the layer uses, built in one place."""

    def __init__(self, prefix: str, hash_tags: bool = False) -> None:
        self.prefix = f"{prefix}:"
        self.hash_tags = hash_tags

    def _routed(self, token: str) -> str:
        return f"{{{token}}}" if self.hash_tags else token

    # worker channels: routing token = the channel name
    def queue(self, channel: str) -> str:
        return f"{self.prefix}q:{self._routed(channel)}"

    def inflight(self, client_id: str, channel: str) -> str:
        return f"{self.prefix}f:{client_id}:{self._routed(channel)}"

    def lease(self, client_id: str, channel: str) -> str:
        return f"{self.prefix}alive:{client_id}:{self._routed(channel)}"

    def inflight_registry(self, channel: str) -> str:
        return f"{self.prefix}fr:{self._routed(channel)}"

    # groups: routing token = the group name
    def group_topic(self, group: str) -> bytes:
        return f"{self.prefix}g:{self._routed(group)}".encode()

    def group_workers(self, group: str) -> str:
        return f"{self.prefix}gw:{self._routed(group)}"

    # clients: routing token = the client id
    def inbox(self, client_id: str) -> bytes:
        return f"{self.prefix}i:{self._routed(client_id)}".encode()

    def memberships(self, client_id: str) -> str:
        return f"{self.prefix}m:{self._routed(client_id)}"

    def pattern(self) -> str:
        """A SCAN pattern matching every key of this prefix."""
        return f"{self.prefix}*"


# -- payloads and queue entries -------------------------------------------------------------------


class MessageCodec:
    """msgpack serialization, with optional Fernet encryption (first key encrypts, every key
    decrypts, so keys can be rotated). Keys are any strings; each is stretched with SHA-256."""

    def __init__(self, symmetric_encryption_keys: Iterable[str | bytes] | None = None) -> None:
        keys = list(symmetric_encryption_keys or [])
        self.crypter = None
        if keys:
            from cryptography.fernet import Fernet, MultiFernet

            fernets = []
            for key in keys:
                raw = key.encode() if isinstance(key, str) else key
                fernets.append(Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw).digest())))
            self.crypter = MultiFernet(fernets)

    def pack(self, message: Message) -> bytes:
        """The plain msgpack bytes of ``message`` (TypeError for values msgpack cannot hold)."""
        return msgpack.packb(message, use_bin_type=True)

    def unpack(self, payload: bytes) -> Message:
        return msgpack.unpackb(payload, raw=False)

    def seal(self, plain: bytes) -> bytes:
        """What goes over Redis: ``plain`` encrypted when keys are configured."""
        return self.crypter.encrypt(plain) if self.crypter is not None else plain

    def open(self, sealed: bytes) -> bytes:
        """The plain bytes of a sealed payload; ``cryptography.fernet.InvalidToken`` when no key
        fits."""
        return self.crypter.decrypt(sealed) if self.crypter is not None else sealed


def queue_entry(sealed: bytes, expires_at: float) -> bytes:
    """A queue entry: the expiry (seconds since the epoch) as 13 digits of ms, then the payload."""
    return b"%013d" % int(expires_at * 1000) + sealed


def entry_expiry(entry: bytes) -> float:
    """When a queue entry expires, in seconds since the epoch."""
    return int(entry[:EXPIRY_DIGITS]) / 1000


def entry_payload(entry: bytes) -> bytes:
    """The sealed payload of a queue entry."""
    return entry[EXPIRY_DIGITS:]


def now_ms() -> int:
    return int(time.time() * 1000)


# -- inbox frames ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboxMessage:
    channel: str
    entry: bytes


@dataclass(frozen=True, slots=True)
class MembershipAdded:
    group: str
    channel: str
    joined: float


@dataclass(frozen=True, slots=True)
class MembershipDiscarded:
    group: str
    channel: str


InboxFrame = InboxMessage | MembershipAdded | MembershipDiscarded


def message_frame(channel: str, entry: bytes) -> bytes:
    return b"m" + channel.encode() + b"\x00" + entry


def added_frame(group: str, channel: str, joined: float) -> bytes:
    return b"a%s\x00%s\x00%s" % (group.encode(), channel.encode(), repr(joined).encode())


def discarded_frame(group: str, channel: str) -> bytes:
    return b"d%s\x00%s" % (group.encode(), channel.encode())


def decode_inbox_frame(frame: bytes) -> InboxFrame:
    """The frame published to an inbox; ValueError for one this version does not know."""
    kind = frame[:1]
    if kind == b"m":
        channel, _, entry = frame[1:].partition(b"\x00")
        return InboxMessage(channel.decode(), entry)
    if kind == b"a":
        group, _, rest = frame[1:].partition(b"\x00")
        channel, _, joined = rest.partition(b"\x00")
        return MembershipAdded(group.decode(), channel.decode(), float(joined))
    if kind == b"d":
        group, _, channel = frame[1:].partition(b"\x00")
        return MembershipDiscarded(group.decode(), channel.decode())
    raise ValueError(f"Unknown inbox frame kind {kind!r} (expected b'm', b'a' or b'd')")


# -- scripts --------------------------------------------------------------------------------------


class Script:
    """A Lua script run with EVALSHA; every key it touches is passed in KEYS (one slot)."""

    def __init__(self, name: str, keys: tuple[str, ...], source: str) -> None:
        self.name = name
        self.keys = keys
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def command(self, keys: tuple[str, ...], *args: Any) -> tuple[Any, ...]:
        """The EVALSHA command running this script on ``keys`` (in the order of ``self.keys``)."""
        if len(keys) != len(self.keys):
            raise ValueError(f"Script {self.name} takes keys {self.keys}, got {keys!r}")
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


# ARGV: entry, capacity, ttl ms, now ms. Returns 1 if queued, 0 if full. Drops expired entries
# (oldest at the right) only when the list looks full.
SEND = Script(
    "send",
    ("queue",),
    """
local capacity = tonumber(ARGV[2])
if redis.call('LLEN', KEYS[1]) >= capacity then
    local now = tonumber(ARGV[4])
    while true do
        local oldest = redis.call('LINDEX', KEYS[1], -1)
        if not oldest or tonumber(string.sub(oldest, 1, 13)) > now then break end
        redis.call('RPOP', KEYS[1])
    end
    if redis.call('LLEN', KEYS[1]) >= capacity then return 0 end
end
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
""",
)

# ARGV[1]: the client id the in-flight list belongs to. When its lease is gone, moves its
# in-flight messages back to the consuming end of the queue and forgets it in the registry.
# Returns how many messages it moved.
RECOVER = Script(
    "recover",
    ("lease", "inflight", "queue", "registry"),
    """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local moved = 0
while redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT') do
    moved = moved + 1
end
redis.call('SREM', KEYS[4], ARGV[1])
return moved
""",
)

SCRIPTS = {script.sha: script for script in (SEND, RECOVER)}

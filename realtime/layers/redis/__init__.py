"""A channel layer on Redis for many processes on many machines: ``RedisChannelLayer``.

Configuration (``CHANNEL_LAYERS[alias]["CONFIG"]``, the keys channels_redis users know)::

    {
        "hosts": ["redis://127.0.0.1:6379/0"],   # one Redis, or several (sharded, see below):
                                                 # URLs, or dicts of connection kwargs
        # "cluster": "redis://node-a:7000",      # or a Redis Cluster (any node; not with hosts)
        "prefix": "asgi",                        # every key and pub/sub channel starts with it
        "expiry": 60,                            # seconds an undelivered message is kept
        "group_expiry": 86400,                   # seconds a group membership lasts
        "capacity": 100,                         # undelivered messages per channel
        "channel_capacity": {"worker.*": 1000},  # per-channel capacities (globs or regexes)
        "symmetric_encryption_keys": ["..."],    # encrypt payloads (Fernet; first key encrypts)
        "worker_lease": 30,                      # seconds before a dead worker's messages return
        "reconnect_max_delay": 5,                # back-off cap while a server is unreachable
        "command_timeout": 10,                   # seconds before a silent Redis counts as down
        "health_check_interval": 15,             # PING a pub/sub connection when this quiet
    }

The package, one job per module:

    wire.py        key names (``KeySpace``), queue entries, inbox frames, payload codec, Lua scripts
    connection.py  one server: connecting (URL, kwargs, Sentinel), outage state, back-off,
                   the pipelined command connection
    shards.py      which server holds a name: one server, rendezvous over hosts, cluster slots
    routing.py     runs commands on the right server; NOSCRIPT, MOVED, ASK, TRYAGAIN
    pubsub.py      a client's pub/sub connection to one server
    fetcher.py     a client's reliable fetching of one worker channel
    client.py      everything one event loop holds; fan-out of group messages to local members
    layer.py       ``RedisChannelLayer``: the contract, in terms of the above

How messages travel
-------------------
Every event loop that uses the layer holds a *client*: one command connection per server it
talks to (the commands of all its tasks are written in order and their replies matched in order,
so they go out pipelined with no pool checkout), one pub/sub connection per server it listens
to, and one blocking connection per worker channel it receives from: 2,000 consumers in a
process on one Redis cost two connections. A client has an id; ``new_channel()`` names carry it
(``"specific.<client id>!<random>"``) so any process can tell which client owns a channel. Key
names and frames are in ``wire.py``.

Process-local channels (names with ``!``) live in memory in their owner, never in a Redis list:

- ``send`` from the owner itself puts the message straight on the local queue (no Redis at all);
  from anywhere else it is one ``PUBLISH`` to the owner's *inbox*.
- ``group_add(group, name)`` by the owner records the membership in memory and subscribes the
  client to the group's pub/sub channel when it is its first member there. Done by another
  process (a Django view calling ``Group(g).add_sync(name)``), it stores the membership in the
  owner's membership hash and publishes it to the owner's inbox; the owner applies it at once,
  and re-reads the hash whenever its inbox is subscribed again, so a membership change made
  while it was cut off from Redis still arrives.
- ``group_send`` is one ``PUBLISH`` (pipelined with one ``ZRANGEBYSCORE``, see below) whatever
  the group size: each subscribed client decrypts and fans the payload out to its own members in
  memory. A member whose queue is full misses that message alone (``stats()["dropped"]``).

Worker channels (names without ``!``) are durable queues (Redis lists), see ``fetcher.py``:

- ``send`` runs a small script: drop expired messages when the list looks full, refuse
  (``ChannelFull``) at capacity, ``LPUSH``, refresh the key's TTL.
- A receiving client moves messages with ``BLMOVE`` into its own *in-flight list* and holds a
  lease on the channel while it consumes. Acknowledging a message removes it from the in-flight
  list; acknowledgements ride along with the next ``BLMOVE`` of the channel.
- Every consumer of a channel, every ``worker_lease`` seconds, moves the in-flight messages of the
  channel's consumers whose lease expired (killed workers, lost machines) back to the front of
  the queue. A message is therefore delivered *at least once*: exactly once in normal
  operation, again after its receiver died before acknowledging it.
- Group members that are worker channels are kept in a sorted set per group (score: when they
  joined); ``group_send`` reads it in the same round trip as its ``PUBLISH`` and queues the
  message on each of them (a second round trip, only for groups that have any).

Receiving
---------
``receive(channel)`` is the Channels contract: it returns the next message and acknowledges it
(the acknowledgement travels with the client's next command on that channel).
``receive_with_ack(channel) -> (message, ack)`` is for workers that want at-least-once delivery
across crashes: ``await ack()`` once the message is handled; a message never acknowledged goes
back to its queue when its client's lease runs out. For process-local channels ``ack`` does
nothing (they are not durable). Cancelling a ``receive`` loses nothing: a message fetched for a
receiver that went away waits for the next ``receive`` of that channel (and goes back to the
Redis queue on ``close()``).

Several servers
---------------
With several ``hosts`` (independent servers, no replication between them) every name has one
owner (``shards.py``, rendezvous hashing): a worker channel's queue and in-flight lists, a
group's pub/sub channel and worker members, and a client's inbox and membership hash each live
on one server. A client listens on each server that owns one of its groups or its inbox, so a
``group_send`` still costs one ``PUBLISH`` on one server, and the load divides over the servers.

With ``"cluster"``, the same names carry hash tags (``asgi:q:{jobs}``) so each queue, group or
inbox lives in one slot, pub/sub is sharded (``SSUBSCRIBE``/``SPUBLISH``) and the slot table
follows the cluster: ``MOVED`` and ``ASK`` are handled (``routing.py``), a pub/sub channel
whose slot moved away is subscribed on its new owner, and a fetcher follows its queue. While a
node is unreachable the slot table is read again from the others, so a replica that took over a
dead master's slots is followed too. A resharding therefore loses no accepted worker message
(the keys move with their slot; a command is redirected, never dropped) and delivers no group
message twice; group messages published while a subscription is moving may be missed (at most
once, as during any reconnect).

What changes with the host list: every process must list the same hosts (spelled the same way).
Adding a host moves about 1/n of all names to it, removing one moves only its own names. While
processes disagree (a rolling restart), a group whose owner moved has publishers and
subscribers on different servers: its messages are missed until all processes agree. After the
change, a moved worker channel's queued and in-flight messages stay on the old server (lost to
the new configuration once they expire: drain queues before removing a host); memberships
stored by other processes for a moved inbox are forgotten (the consumers' own memberships are in
memory and are subscribed on the new owner). Pub/sub messages are never stored, so nothing else
is lost.

Faults
------
A server unreachable or restarting never crashes the process and never spins: each pub/sub
connection and worker fetcher reconnects with exponential back-off (capped at
``reconnect_max_delay``), re-subscribes its channels, and the inbox's re-reads remote
memberships; each server's outage is logged once at WARNING and its end at INFO. Operations that
need a server while it is down (a send to a worker channel or to another process, ``group_send``,
a remote ``group_add``) raise :class:`~realtime.exceptions.LayerUnavailableError` (a
``ConnectionError``) at once: nothing is buffered, so a caller knows the message was not accepted
and may retry or report it. With several servers or a cluster, only names the missing server
owns fail; the rest keep working. Local work continues: sends between channels of the same
client still work, and receivers keep waiting. Pub/sub messages published while a client was
disconnected are not replayed to it (apps that must not lose anything resend from their own
store, as the chat does with the last id a client saw).

Limits: a send to a process-local channel of *another* process cannot see the remote queue, so it
never raises ``ChannelFull``: the owner drops the message when the queue is full and counts it in
``stats()["dropped"]``.
State is per event loop (several loops in one process, as with ``async_to_sync``, each get their
own client); a loop's connections are closed when that loop closes.
"""

from realtime.exceptions import LayerUnavailableError
from realtime.layers.redis.layer import RedisChannelLayer
from realtime.layers.redis.wire import MessageCodec

__all__ = ["LayerUnavailableError", "MessageCodec", "RedisChannelLayer"]

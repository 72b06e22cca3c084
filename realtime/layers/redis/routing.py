"""Runs commands on the server that owns their routing token, and settles what a server answers
instead of a result:

- ``NOSCRIPT``: the server does not know a script (first use, after a restart): load it there and
  run the command again.
- ``MOVED slot host:port`` (cluster): the slot lives elsewhere now. Record the new owner, read the
  slot table again, run the command there. The server did not run the command, so nothing runs
  twice.
- ``ASK slot host:port`` (cluster, a slot being migrated): the key is already on the target; run
  this one command there after ``ASKING``.
- ``TRYAGAIN`` (cluster, a multi-key command whose keys are split by a migration in progress):
  wait a moment and run it again.
- ``CLUSTERDOWN``: the slot's master is gone: ``LayerUnavailableError`` naming that server.

A command is settled at most ``MAX_REDIRECTS`` times; any other error reply is raised. A
resharding therefore never loses a command the layer reported as done: it either ran exactly
once somewhere or raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    ResponseError,
    TryAgainError,
)

from realtime.exceptions import LayerUnavailableError
from realtime.layers.redis.connection import CommandConnection, Server
from realtime.layers.redis.shards import ClusterShards, ShardMap
from realtime.layers.redis.wire import SCRIPTS

MAX_REDIRECTS = 8
TRYAGAIN_DELAY = 0.05

Command = tuple[Any, ...]


class Router:
    """One event loop's command connections, one per server, and the routing between them."""

    def __init__(self, shards: ShardMap) -> None:
        self.shards = shards
        self.connections: dict[Server, CommandConnection] = {}

    def connection(self, server: Server) -> CommandConnection:
        connection = self.connections.get(server)
        if connection is None:
            connection = self.connections[server] = CommandConnection(server)
        return connection

    async def execute(self, token: str, *commands: Command) -> list[Any]:
        """Replies to ``commands`` (one pipeline) on the server owning ``token``."""
        server = self.shards.server_for(token)
        connection = self.connections.get(server) or self.connection(server)
        try:
            results = await connection.execute(*commands, raise_errors=False)
        except LayerUnavailableError:
            # On a cluster, a replica may have taken over the slot: ask again where it lives.
            self.shards.refresh_soon()
            raise
        for result in results:
            if isinstance(result, ResponseError):
                return await self._settle(token, server, commands, results)
        return results

    async def execute_many(self, calls: Sequence[tuple[str, Command]]) -> list[Any]:
        """Replies to ``(token, command)`` calls, in order: one pipeline per server, the servers
        asked at once. The first failure (an unreachable server) is raised after all answered."""
        by_server: dict[Server, list[int]] = {}
        for index, (token, _) in enumerate(calls):
            by_server.setdefault(self.shards.server_for(token), []).append(index)
        results: list[Any] = [None] * len(calls)

        async def run(server: Server, indexes: list[int]) -> None:
            commands = [calls[index][1] for index in indexes]
            try:
                replies = await self.connection(server).execute(*commands, raise_errors=False)
            except LayerUnavailableError:
                self.shards.refresh_soon()
                raise
            for index, command, reply in zip(indexes, commands, replies, strict=True):
                if isinstance(reply, ResponseError):
                    (reply,) = await self._settle(calls[index][0], server, (command,), [reply])
                results[index] = reply

        if len(by_server) == 1:  # one server (the usual case): no task to gather
            ((server, indexes),) = by_server.items()
            await run(server, indexes)
            return results
        outcomes = await asyncio.gather(
            *(run(server, indexes) for server, indexes in by_server.items()),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return results

    async def _settle(
        self, token: str, server: Server, commands: Sequence[Command], results: list[Any]
    ) -> list[Any]:
        settled = list(results)
        for index, command in enumerate(commands):
            answered_by = server
            for _ in range(MAX_REDIRECTS):
                result = settled[index]
                if not isinstance(result, ResponseError):
                    break
                answered_by, result = await self._redirect(token, answered_by, command, result)
                settled[index] = result
            if isinstance(settled[index], ResponseError):
                raise settled[index]
        return settled

    async def _redirect(
        self, token: str, server: Server, command: Command, error: ResponseError
    ) -> tuple[Server, Any]:
        """(the server that answered, its answer) after acting on one error reply."""
        shards = self.shards
        if isinstance(error, NoScriptError):
            script = SCRIPTS[command[1]]
            connection = self.connection(server)
            _, result = await connection.execute(
                ("SCRIPT", "LOAD", script.source), command, raise_errors=False
            )
            return server, result
        if not isinstance(shards, ClusterShards):
            raise error
        if isinstance(error, MovedError):
            target = shards.moved(error.slot_id, error.host, error.port)
            shards.refresh_soon()
            (result,) = await self.connection(target).execute(command, raise_errors=False)
            return target, result
        if isinstance(error, AskError):
            target = shards.node(error.host, error.port)
            _, result = await self.connection(target).execute(
                ("ASKING",), command, raise_errors=False
            )
            return target, result
        if isinstance(error, TryAgainError):
            await asyncio.sleep(TRYAGAIN_DELAY)
            target = shards.server_for(token)
            (result,) = await self.connection(target).execute(command, raise_errors=False)
            return target, result
        if isinstance(error, ClusterDownError):
            raise server.unavailable(error)
        raise error

    async def close(self) -> None:
        for connection in self.connections.values():
            await connection.close()
        self.connections.clear()

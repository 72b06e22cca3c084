"""`python manage.py serve --host 127.0.0.1 --port 8000`: everything in one process.

(``--processes N`` runs N such processes on one listening socket: see realtime/process_group.py.)

One asyncio event loop (Daphne's, under Twisted's asyncio reactor) runs:

- Daphne serving the root application (settings.ASGI_APPLICATION, or ``--application``): HTTP,
  including static files through WhiteNoise in Django's middleware, and WebSockets;
- the in-process worker (`realtime.worker.Worker`) on every channel of the root application's
  ChannelNameRouter, when settings.REALTIME_INPROCESS_WORKER is "on", or "auto" and the default
  channel layer is the in-memory one (a separate `runworker` process could not share it);
- every service in settings.REALTIME_EMBEDDED_SERVICES: dotted paths to
  ``async def service(application) -> None``, each run as a task (an APRS replay, say).

A request or WebSocket handshake for a path no URLRouter route matches gets an HTTP 404, or a
WebSocket refused at the handshake (Daphne answers a close-before-accept with 403), instead of
Daphne's 500 and an "Exception inside application" traceback (see `RouteMissResponder`).

Background tasks start once the reactor runs.

Shutdown drains (SIGTERM or SIGINT; a second signal stops at once):

1. the listening sockets close, so a proxy sends new connections to the other processes;
2. every open WebSocket is closed with 1012 ("service restart"): browsers reconnect at once,
   through the proxy, to another process; each application gets ``websocket.disconnect`` and
   cleans up (the chat removes its presence entries);
3. HTTP requests in flight (long-polls included) may finish, for at most
   settings.REALTIME_SHUTDOWN_GRACE seconds (SWITCHBOARD_SHUTDOWN_GRACE, default 15);
4. then what is still running is cancelled, the worker finishes its messages in hand, services
   are cancelled, and the process exits with 0.

A supervisor must allow more than the grace before it kills the process (systemd's
TimeoutStopSec, compose's stop_grace_period).
"""

from __future__ import annotations

# Daphne's server module installs Twisted's asyncio reactor; it has to come before anything else
# imports twisted.internet.reactor.
import daphne.server  # isort: skip

import asyncio
import functools
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from daphne.endpoints import build_endpoint_description_strings
from daphne.ws_protocol import WebSocketProtocol
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.module_loading import import_string
from twisted.internet import defer, reactor

from realtime import backlog
from realtime.exceptions import RouteNotFound
from realtime.layers import get_channel_layer
from realtime.layers.memory import InMemoryChannelLayer
from realtime.management.commands.runworker import load_application
from realtime.process_group import ProcessGroup, listening_socket
from realtime.request_body import BodyLimitedHTTPFactory
from realtime.types import ASGIApp, Message, Receive, Scope, Send
from realtime.worker import Worker, channel_route_names, inprocess_worker_wanted

logger = logging.getLogger("realtime.serve")

Service = Callable[[ASGIApp], Awaitable[None]]
SHUTDOWN_TIMEOUT = 10.0
WORKER_TASK = "in-process worker"
#: Seconds requests in flight may take to finish after SIGTERM (settings.REALTIME_SHUTDOWN_GRACE).
DEFAULT_SHUTDOWN_GRACE = 15.0
#: With --processes: seconds beyond a process's own drain and task shutdown before it is killed.
STOP_MARGIN = 5.0
#: The WebSocket close code of a draining server: "service restart, reconnect" (RFC 6455 registry).
CLOSE_SERVICE_RESTART = 1012
#: How often the drain looks for sockets to close and requests still running.
DRAIN_POLL_SECONDS = 0.05


class RouteMissResponder:
    """Wraps the root application so that a URLRouter miss gets the answer a client expects.

    URLRouter raises ``RouteNotFound("No route found for path 'ws/nowhere/'.")`` (a ValueError, as
    in Channels) and leaves it to the server to answer. When that escapes before anything was
    sent, this
    answers HTTP 404 (text/plain) or closes the WebSocket before accepting it (Daphne sends 403),
    logging one INFO line; every other error propagates unchanged (Daphne logs it and answers 500).
    """

    def __init__(self, application: ASGIApp) -> None:
        self.application = application

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.application(scope, receive, send)
            return
        sent = False

        async def tracking_send(message: Message) -> None:
            nonlocal sent
            sent = True
            await send(message)

        try:
            await self.application(scope, receive, tracking_send)
        except RouteNotFound as error:
            if sent:
                raise
            logger.info("%s %s: %s", scope["type"], scope.get("path"), error)
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1000})
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                }
            )
            await send({"type": "http.response.body", "body": b"Not Found"})


class Server(daphne.server.Server):
    """Daphne's server, minus a crash at shutdown, plus a request body limit and what a drain
    needs.

    Daphne's `kill_all_applications` reads ``details["application_instance"]`` of every
    connection, but a connection whose application already ended has none until the next clean-up
    pass, so a SIGTERM shortly after a refused handshake logged a KeyError traceback.

    Daphne builds its HTTP factory in `run()`; the one kept here refuses a request body over
    settings.REALTIME_MAX_REQUEST_BODY before buffering it (realtime.request_body).
    """

    @property
    def http_factory(self) -> BodyLimitedHTTPFactory:
        return self._http_factory

    @http_factory.setter
    def http_factory(self, factory: Any) -> None:
        self._http_factory = BodyLimitedHTTPFactory(factory.server)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ports: list[Any] = []

    def listen_success(self, port: Any) -> None:
        super().listen_success(port)
        self.ports.append(port)

    def stop_listening(self) -> defer.Deferred:
        """Close every listening socket (connections already open stay)."""
        return defer.gatherResults(
            [defer.maybeDeferred(port.stopListening) for port in self.ports], consumeErrors=True
        )

    def close_websockets(self, code: int, already: set[int]) -> int:
        """Close every open WebSocket not closed yet (ids in `already`) with `code`."""
        closed = 0
        for protocol in list(self.connections):
            if (
                isinstance(protocol, WebSocketProtocol)
                and protocol.state == WebSocketProtocol.STATE_OPEN
                and id(protocol) not in already
            ):
                already.add(id(protocol))
                # autobahn's sendClose() accepts only 1000 and 3000-4999 from applications;
                # 1012 is a server's code, sent as the frame it is.
                protocol.sendCloseFrame(code=code, reasonUtf8=b"service restart")
                # From now on Daphne drops what the application sends (a chat message from the
                # layer, say) instead of raising "send on a closed protocol" inside it, which
                # would end the application before it hears websocket.disconnect and cleans up.
                self.protocol_disconnected(protocol)
                closed += 1
        return closed

    def report_failed_applications(self) -> None:
        """Log the error of every application that failed since Daphne's last clean-up pass
        (which runs once a second, so a drain that ends sooner would never report them)."""
        for details in list(self.connections.values()):
            instance = details.get("application_instance")
            if instance is None or not instance.done() or instance.cancelled():
                continue
            error = instance.exception()
            if error is not None:
                logger.error("Exception inside application: %s", error, exc_info=error)
                details.pop("application_instance", None)

    def busy_connections(self) -> int:
        """Connections whose application is still running (requests in flight, open sockets)."""
        return sum(
            1
            for details in list(self.connections.values())
            if (instance := details.get("application_instance")) is not None and not instance.done()
        )

    def kill_all_applications(self) -> defer.Deferred:
        running = [
            instance
            for details in self.connections.values()
            if (instance := details.get("application_instance")) is not None and not instance.done()
        ]
        for instance in running:
            instance.cancel()
        logger.info("Cancelled %d open connections", len(running))
        waiting = defer.Deferred.fromFuture(asyncio.gather(*running, return_exceptions=True))
        waiting.addErrback(lambda _: None)
        return waiting


def load_services(paths: list[str]) -> list[tuple[str, Service]]:
    """Import every embedded service; a path that does not import stops the server at start."""
    services = []
    for path in paths:
        try:
            service = import_string(path)
        except ImportError as error:
            raise CommandError(
                f"Cannot import the embedded service {path!r} "
                f"(settings.REALTIME_EMBEDDED_SERVICES): {error}"
            ) from error
        if not callable(service):
            raise CommandError(f"The embedded service {path!r} is not callable")
        services.append((path, service))
    return services


class Command(BaseCommand):
    help = (
        "Serve HTTP and WebSockets with Daphne, plus the in-process worker and embedded services."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on")
        parser.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
        parser.add_argument(
            "--application",
            default=None,
            help="Dotted path to the ASGI application (default: settings.ASGI_APPLICATION)",
        )
        parser.add_argument(
            "--no-worker", action="store_true", help="Do not run the in-process worker"
        )
        parser.add_argument(
            "--no-services",
            action="store_true",
            help="Do not run settings.REALTIME_EMBEDDED_SERVICES",
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=1,
            help="Server processes sharing the listening socket (one per core; needs a shared "
            "channel layer such as Redis). Embedded services run in the first one only.",
        )
        parser.add_argument(
            "--fd",
            type=int,
            default=None,
            help="Serve on this inherited listening socket instead of --host/--port "
            "(what --processes gives each process)",
        )
        parser.add_argument(
            "--websocket-connect-timeout",
            "--websocket_connect_timeout",
            type=float,
            default=30.0,
            help="Seconds a WebSocket handshake may wait for the application to accept it "
            "(Daphne's default of 5 is short for the burst of reconnects after a restart)",
        )
        parser.add_argument(
            "--proxy-headers",
            action="store_true",
            help="Take the client address, port and scheme from X-Forwarded-For/-Port/-Proto "
            "(only behind a proxy that sets them)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity: int = options["verbosity"]
        if options["processes"] != 1:
            self._serve_processes(options)
            return
        application = load_application(options["application"])
        services = (
            []
            if options["no_services"]
            else load_services(getattr(settings, "REALTIME_EMBEDDED_SERVICES", []))
        )
        self.worker = self._make_worker(application, disabled=options["no_worker"])
        self.services = services
        self.application = application
        # Background futures by name: "in-process worker" and each service's dotted path.
        self.tasks: dict[str, asyncio.Future] = {}
        try:
            if options["fd"] is not None:
                endpoints = build_endpoint_description_strings(file_descriptor=options["fd"])
            else:
                endpoints = build_endpoint_description_strings(
                    host=options["host"], port=options["port"]
                )
        except ValueError as error:
            raise CommandError(str(error)) from error
        proxied = options["proxy_headers"]
        self.server = Server(
            application=RouteMissResponder(application),
            endpoints=endpoints,
            proxy_forwarded_address_header="X-Forwarded-For" if proxied else None,
            proxy_forwarded_port_header="X-Forwarded-Port" if proxied else None,
            proxy_forwarded_proto_header="X-Forwarded-Proto" if proxied else None,
            # Signals are ours: SIGTERM/SIGINT drain (see the module docstring).
            signal_handlers=False,
            websocket_connect_timeout=options["websocket_connect_timeout"],
            websocket_handshake_timeout=options["websocket_connect_timeout"],
            action_logger=self.log_action if self.verbosity >= 2 else None,
            verbosity=self.verbosity,
            root_path=getattr(settings, "FORCE_SCRIPT_NAME", None) or "",
            server_name="switchboard",
        )
        reactor.callWhenRunning(self._started)
        # Twisted's interface stubs declare this method without `self`.
        reactor.addSystemEventTrigger("before", "shutdown", self._stopping)  # type: ignore[arg-type]
        self.server.run()
        if not self.server.listening_addresses:
            raise CommandError(f"Could not listen on {', '.join(endpoints)} (see the log above)")
        if self.verbosity >= 1:
            self.stdout.write("Switchboard stopped")

    def _serve_processes(self, options: dict[str, Any]) -> None:
        """Bind once and run ``--processes`` copies of this command on the socket (see
        realtime/process_group.py)."""
        count = options["processes"]
        if count < 1 or options["fd"] is not None:
            raise CommandError(f"--processes must be 1 or more, without --fd; got {count}")
        layer = get_channel_layer()
        if isinstance(layer, InMemoryChannelLayer):
            raise CommandError(
                f"--processes {count} needs a channel layer the processes share (set REDIS_URL): "
                "the in-memory layer lives inside one process"
            )
        host, port = options["host"], options["port"]
        try:
            listening = listening_socket(host, port)
        except OSError as error:
            raise CommandError(f"Could not listen on {host}:{port}: {error}") from error
        script = Path(sys.argv[0])
        start = (
            [sys.executable, str(script.resolve())]
            if script.name == "manage.py"
            else [sys.executable, "-m", "django"]
        )
        common = [
            "serve",
            "--fd",
            str(listening.fileno()),
            "--verbosity",
            str(self.verbosity),
            "--websocket-connect-timeout",
            str(options["websocket_connect_timeout"]),
        ]
        if options["application"]:
            common += ["--application", options["application"]]
        for flag in ("no_worker", "proxy_headers"):
            if options[flag]:
                common.append("--" + flag.replace("_", "-"))
        commands = [
            [*start, *common, *(["--no-services"] if index or options["no_services"] else [])]
            for index in range(count)
        ]
        grace = float(getattr(settings, "REALTIME_SHUTDOWN_GRACE", DEFAULT_SHUTDOWN_GRACE))
        group = ProcessGroup(
            commands, listening, stop_timeout=grace + SHUTDOWN_TIMEOUT + STOP_MARGIN
        )

        def started() -> None:
            if self.verbosity >= 1:
                bound_host, bound_port = listening.getsockname()[:2]
                shown = f"[{bound_host}]" if ":" in bound_host else bound_host
                self.stdout.write(
                    f"Switchboard: {count} processes (pids {group.pids()}) on "
                    f"http://{shown}:{bound_port}/"
                )
                self.stdout.flush()

        group.run(on_started=started)
        if self.verbosity >= 1:
            self.stdout.write("Switchboard stopped")

    def _make_worker(self, application: ASGIApp, disabled: bool) -> Worker | None:
        if disabled:
            return None
        layer = get_channel_layer()
        try:
            wanted = inprocess_worker_wanted(settings.REALTIME_INPROCESS_WORKER, layer)
        except ValueError as error:
            raise CommandError(str(error)) from error
        if not wanted:
            return None
        channels = channel_route_names(application)
        if not channels:
            return None
        return Worker(application, channels, layer)

    def _started(self) -> None:
        """Runs once the reactor (and with it the asyncio loop) is running."""
        backlog.install(self.server)  # sockets whose client stops reading are closed (4008)
        loop = asyncio.get_event_loop()
        self.drain_task: asyncio.Task | None = None
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._signalled, signum)
        if self.worker is not None:
            self.tasks[WORKER_TASK] = loop.create_task(self.worker.run())
        for path, service in self.services:
            task = asyncio.ensure_future(service(self.application), loop=loop)
            task.add_done_callback(functools.partial(self._service_ended, path))
            self.tasks[path] = task
        addresses = self.server.listening_addresses
        if addresses and self.verbosity >= 1:
            host, port = addresses[0]
            shown = f"[{host}]" if ":" in host else host
            self.stdout.write(f"Switchboard serving on http://{shown}:{port}/")
            if self.worker is not None:
                self.stdout.write(f"In-process worker on channels {self.worker.channels}")
            for path, _ in self.services:
                self.stdout.write(f"Embedded service {path}")
            self.stdout.flush()

    def _signalled(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.drain_task is not None:
            logger.warning("%s during the drain: stopping now", name)
            if reactor.running:
                reactor.stop()  # type: ignore[misc]
            return
        logger.info("%s: draining", name)
        self.drain_task = asyncio.get_event_loop().create_task(self._drain())

    async def _drain(self) -> None:
        """Stop accepting, close WebSockets with 1012, let requests finish within the grace."""
        loop = asyncio.get_event_loop()
        grace = float(getattr(settings, "REALTIME_SHUTDOWN_GRACE", DEFAULT_SHUTDOWN_GRACE))
        started = loop.time()
        try:
            await self.server.stop_listening().asFuture(loop)
            closed_ids: set[int] = set()
            while True:
                # Sockets whose handshake was still running are closed once they are open.
                self.server.close_websockets(CLOSE_SERVICE_RESTART, closed_ids)
                busy = self.server.busy_connections()
                if not busy or loop.time() - started >= grace:
                    break
                await asyncio.sleep(DRAIN_POLL_SECONDS)
            elapsed = loop.time() - started
            self.server.report_failed_applications()
            if busy:
                logger.warning(
                    "Drain grace of %.0fs over with %d connections still busy; cancelling them",
                    grace,
                    busy,
                )
            else:
                logger.info(
                    "Drained in %.1fs: %d WebSockets closed with %d",
                    elapsed,
                    len(closed_ids),
                    CLOSE_SERVICE_RESTART,
                )
        except Exception:
            logger.exception("Drain failed; stopping now")
        finally:
            if reactor.running:
                reactor.stop()  # type: ignore[misc]

    def _service_ended(self, path: str, task: asyncio.Future) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error("Embedded service %s failed", path, exc_info=error)
        else:
            logger.info("Embedded service %s finished", path)

    def _stopping(self) -> defer.Deferred:
        """Reactor shutdown: let the worker finish its messages in hand, cancel the services."""
        return defer.Deferred.fromFuture(asyncio.ensure_future(self._stop_tasks()))

    async def _stop_tasks(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        for name, task in self.tasks.items():
            if name != WORKER_TASK:
                task.cancel()
        if not self.tasks:
            return
        _, pending = await asyncio.wait(self.tasks.values(), timeout=SHUTDOWN_TIMEOUT)
        for name, task in self.tasks.items():
            if task in pending:
                logger.warning("%s did not stop in %.0fs; cancelling it", name, SHUTDOWN_TIMEOUT)
                task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    def log_action(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        """Daphne's access log, written to stdout (at verbosity 2 and above)."""
        if protocol == "http" and action == "complete":
            line = "HTTP {method} {path} {status} [{time_taken:.2f}, {client}]".format(**details)
        elif protocol == "websocket" and action in {
            "connecting",
            "connected",
            "rejected",
            "disconnected",
        }:
            line = f"WebSocket {action.upper()} {details['path']} [{details['client']}]"
        else:
            return
        self.stdout.write(line)
        self.stdout.flush()

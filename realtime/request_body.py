"""A request body limit inside the server, for `manage.py serve`: refuse before buffering.

Daphne (through Twisted) reads a whole request body, into memory or a temporary file, before it
calls the application, and then queues all of it for the application at once: an anonymous
40 MB POST costs the process 40 MB, whatever the application answers. An ASGI application cannot
refuse earlier, so the limit has to live in the server. These classes plug into Daphne's HTTP
factory and stop reading a request as soon as its body is known to be too large:

- a ``Content-Length`` over the limit: answered when the headers end, before a byte of body is
  read;
- a chunked body: answered as soon as the chunks received pass the limit.

The answer is ``413 Payload Too Large`` (plain text) and the connection is closed; the application
never runs for that request. The limit is ``settings.REALTIME_MAX_REQUEST_BODY`` (bytes; default
2.5 MiB, Django's DATA_UPLOAD_MAX_MEMORY_SIZE; 0 turns it off), except for the paths listed in
``settings.REALTIME_REQUEST_BODY_LIMITS``: ``[(regex, bytes), ...]``, the first regex that matches
the request's path (without the query) gives its limit. An application that accepts larger bodies
on one URL (file uploads) lists it there, so every other URL keeps the small limit. The request
line is known when the headers end, so a per-path limit is as early as the global one. The core's
HTTP consumers have their
own, smaller limit (REALTIME_HTTP_MAX_BODY, see realtime.generic.http); behind nginx,
``client_max_body_size`` does the same job one hop earlier.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from daphne.http_protocol import HTTPFactory, WebRequest
from django.conf import settings

logger = logging.getLogger(__name__)

#: Django's DATA_UPLOAD_MAX_MEMORY_SIZE default: the largest form body a Django view reads.
DEFAULT_MAX_REQUEST_BODY = 2_621_440


def max_request_body(path: str | None = None) -> int:
    """The body limit of a request for `path` (the global one when no listed regex matches)."""
    if path is not None:
        for pattern, limit in getattr(settings, "REALTIME_REQUEST_BODY_LIMITS", ()):
            if re.match(pattern, path):
                return int(limit)
    return int(getattr(settings, "REALTIME_MAX_REQUEST_BODY", DEFAULT_MAX_REQUEST_BODY))


class BodyLimitedRequest(WebRequest):
    """Daphne's request, refusing a body over the limit before it is buffered."""

    refused = False
    body_received = 0

    def body_limit(self) -> int:
        """The limit for this request's path. Twisted names the request target only on the
        channel until the body is complete (``Request.path`` is set after it)."""
        target = getattr(self.channel, "_path", b"") or b""
        path = target.split(b"?", 1)[0].decode("latin-1")
        return max_request_body(path)

    def gotLength(self, length: int | None) -> None:
        limit = self.body_limit()
        if limit and length is not None and length > limit:
            self.refuse(f"request bodies are limited to {limit} bytes, got {length}")
            # No "100 Continue" after the refusal: the client must not start sending.
            self.requestHeaders.removeHeader(b"Expect")
            # Twisted still expects a content file; an empty one, as nothing will be kept.
            super().gotLength(0)
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        self.body_received += len(data)
        limit = self.body_limit()
        if limit and self.body_received > limit:
            self.refuse(f"request bodies are limited to {limit} bytes")
            return
        super().handleContentChunk(data)

    def process(self) -> Any:
        if self.refused:
            return None
        return super().process()

    def refuse(self, message: str) -> None:
        """Answer 413 straight on the transport and close: the request is never processed."""
        self.refused = True
        body = (message + "\n").encode()
        head = (
            b"HTTP/1.1 413 Payload Too Large\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"X-Content-Type-Options: nosniff\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"Connection: close\r\n\r\n"
        )
        logger.info("Refused a request body: %s", message)
        self.channel.transport.write(head + body)
        # Stops reading at once; closes once the answer is written.
        self.channel.loseConnection()


class BodyLimitedHTTPFactory(HTTPFactory):
    """Daphne's HTTP factory, building BodyLimitedRequest requests."""

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = BodyLimitedRequest
        return protocol


__all__ = ["DEFAULT_MAX_REQUEST_BODY", "BodyLimitedHTTPFactory", "BodyLimitedRequest"]

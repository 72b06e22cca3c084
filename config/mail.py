"""Outgoing e-mail from one URL-style setting, ``DJANGO_EMAIL_URL``.

    smtp://host:25                         plain SMTP (a relay on the same machine or network)
    smtp+tls://user:password@host:587      SMTP with STARTTLS (the usual submission port)
    smtp+ssl://user:password@host:465      SMTP over TLS from the first byte (implicit TLS)
    console://                             print every message to the process's output
    file:///var/lib/switchboard/mail       write every message to a file in that directory
    dummy://                               drop every message

A user name or password with reserved characters is percent-encoded (``p%40ss`` for ``p@ss``).
The SMTP forms take an optional ``?timeout=<seconds>`` (default 10). ``parse_email_url`` returns
the Django settings the URL stands for (EMAIL_BACKEND, EMAIL_HOST, EMAIL_PORT, ...); anything it
cannot read raises ``ValueError`` naming the part that is wrong and what was expected.

With ``DJANGO_DEBUG`` off the settings refuse to start when mail would go to the console by
default: password-reset links would end up in the web log. Choosing ``console://`` (or
``DJANGO_EMAIL_BACKEND``) explicitly is allowed.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

CONSOLE_BACKEND = "django.core.mail.backends.console.EmailBackend"
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
DUMMY_BACKEND = "django.core.mail.backends.dummy.EmailBackend"

#: scheme -> (default port, use STARTTLS, use implicit TLS)
SMTP_SCHEMES = {
    "smtp": (25, False, False),
    "smtp+tls": (587, True, False),
    "smtp+ssl": (465, False, True),
}
OTHER_SCHEMES = {"console": CONSOLE_BACKEND, "file": FILE_BACKEND, "dummy": DUMMY_BACKEND}
DEFAULT_TIMEOUT = 10.0


def _redacted(url: str) -> str:
    """The URL with its password replaced, for error messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def parse_email_url(url: str) -> dict[str, Any]:
    """The Django e-mail settings ``url`` stands for (see the module docstring)."""
    shown = _redacted(url)
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    known = sorted([*SMTP_SCHEMES, *OTHER_SCHEMES])
    if scheme in OTHER_SCHEMES:
        if parts.query:
            raise ValueError(f"DJANGO_EMAIL_URL {shown!r}: {scheme}:// takes no query parameters")
        settings: dict[str, Any] = {"EMAIL_BACKEND": OTHER_SCHEMES[scheme]}
        if scheme == "file":
            path = urllib.parse.unquote(parts.path)
            if parts.netloc or not path.startswith("/"):
                raise ValueError(
                    f"DJANGO_EMAIL_URL {shown!r}: file:// needs an absolute directory, "
                    "e.g. file:///var/lib/switchboard/mail"
                )
            settings["EMAIL_FILE_PATH"] = path
        return settings
    if scheme not in SMTP_SCHEMES:
        raise ValueError(
            f"DJANGO_EMAIL_URL {shown!r}: unknown scheme {parts.scheme!r}; expected one of {known}"
        )
    default_port, use_tls, use_ssl = SMTP_SCHEMES[scheme]
    if not parts.hostname:
        raise ValueError(f"DJANGO_EMAIL_URL {shown!r}: no host (expected {scheme}://host:port)")
    try:
        port = parts.port or default_port
    except ValueError as error:
        raise ValueError(f"DJANGO_EMAIL_URL {shown!r}: the port is not a number 1-65535") from error
    if parts.path not in ("", "/"):
        raise ValueError(f"DJANGO_EMAIL_URL {shown!r}: SMTP URLs have no path")
    timeout = DEFAULT_TIMEOUT
    for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if name != "timeout":
            raise ValueError(
                f"DJANGO_EMAIL_URL {shown!r}: unknown parameter {name!r}; only 'timeout' is known"
            )
        try:
            timeout = float(value)
        except ValueError:
            timeout = -1.0
        if not timeout > 0:
            raise ValueError(
                f"DJANGO_EMAIL_URL {shown!r}: timeout must be a number of seconds above 0, "
                f"got {value!r}"
            )
    if (parts.username is None) != (parts.password is None):
        raise ValueError(
            f"DJANGO_EMAIL_URL {shown!r}: give both a user name and a password, or neither"
        )
    return {
        "EMAIL_BACKEND": SMTP_BACKEND,
        "EMAIL_HOST": parts.hostname,
        "EMAIL_PORT": port,
        "EMAIL_HOST_USER": urllib.parse.unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": urllib.parse.unquote(parts.password or ""),
        "EMAIL_USE_TLS": use_tls,
        "EMAIL_USE_SSL": use_ssl,
        "EMAIL_TIMEOUT": timeout,
    }

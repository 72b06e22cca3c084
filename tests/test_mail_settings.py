"""Outgoing mail in production: never the console by accident, SMTP from one DJANGO_EMAIL_URL.

With DJANGO_DEBUG off and no mail configured, every process refuses to start (password-reset links
would otherwise be written to the web log); `console://` chosen on purpose is allowed; a bad URL
stops the process with an error naming what is wrong; an SMTP URL delivers a password-reset mail
to a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import re
import socketserver
import sys
import threading
from collections.abc import Iterator

import pytest

from config.mail import CONSOLE_BACKEND, SMTP_BACKEND, parse_email_url
from tests.test_production_settings import production_env, run


def test_debug_off_without_mail_settings_refuses_to_start(tmp_path):
    env = production_env(tmp_path)
    env.pop("DJANGO_EMAIL_URL")
    result = run([sys.executable, "manage.py", "check", "--deploy"], env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_EMAIL_URL" in result.stderr


def test_daphne_refuses_to_serve_without_mail_settings(tmp_path):
    from tests.servers import free_port

    env = production_env(tmp_path)
    env.pop("DJANGO_EMAIL_URL")
    daphne = [sys.executable, "-m", "daphne", "-p", str(free_port()), "config.asgi:application"]
    result = run(daphne, env)
    assert result.returncode != 0
    assert "DJANGO_EMAIL_URL" in result.stderr


@pytest.mark.parametrize(
    "chosen",
    [
        {"DJANGO_EMAIL_URL": "console://"},
        {"DJANGO_EMAIL_URL": None, "DJANGO_EMAIL_BACKEND": CONSOLE_BACKEND},
    ],
    ids=["url", "backend"],
)
def test_console_backend_chosen_explicitly_is_allowed(tmp_path, chosen):
    env = production_env(tmp_path, **chosen)
    result = run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"], env)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtps://mail.example.com", "unknown scheme 'smtps'"),
        ("smtp+tls://:587", "no host"),
        ("smtp+tls://mail.example.com:99999", "port"),
        ("smtp+tls://mail.example.com:587?timeout=soon", "timeout"),
        ("smtp+tls://mail.example.com:587?tls=1", "unknown parameter 'tls'"),
        ("file://relative/dir", "absolute directory"),
    ],
)
def test_bad_email_url_stops_the_process_with_a_clear_error(tmp_path, url, expected):
    result = run(
        [sys.executable, "manage.py", "check"], production_env(tmp_path, DJANGO_EMAIL_URL=url)
    )
    assert result.returncode != 0
    assert "DJANGO_EMAIL_URL" in result.stderr
    assert expected in result.stderr


def test_bad_email_url_error_does_not_print_the_password():
    with pytest.raises(ValueError) as error:
        parse_email_url("smtp+tls://user:hunter2@mail.example.com:587?timeout=x")
    assert "hunter2" not in str(error.value)
    assert "***" in str(error.value)


def test_setting_both_url_and_backend_is_refused(tmp_path):
    env = production_env(tmp_path, DJANGO_EMAIL_BACKEND=CONSOLE_BACKEND)
    result = run([sys.executable, "manage.py", "check"], env)
    assert result.returncode != 0
    assert "Both DJANGO_EMAIL_URL and DJANGO_EMAIL_BACKEND" in result.stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp+tls://me%40example.com:p%40ss%3Aword@Mail.Example.com:2587?timeout=4.5",
            {
                "EMAIL_BACKEND": SMTP_BACKEND,
                "EMAIL_HOST": "mail.example.com",
                "EMAIL_PORT": 2587,
                "EMAIL_HOST_USER": "me@example.com",
                "EMAIL_HOST_PASSWORD": "p@ss:word",
                "EMAIL_USE_TLS": True,
                "EMAIL_USE_SSL": False,
                "EMAIL_TIMEOUT": 4.5,
            },
        ),
        (
            "smtp+ssl://u:p@mail.example.com",
            {"EMAIL_PORT": 465, "EMAIL_USE_SSL": True, "EMAIL_USE_TLS": False},
        ),
        ("smtp://relay", {"EMAIL_PORT": 25, "EMAIL_HOST_USER": "", "EMAIL_USE_TLS": False}),
        (
            "file:///var/lib/switch%20board/mail",
            {"EMAIL_FILE_PATH": "/var/lib/switch board/mail"},
        ),
        ("dummy://", {"EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend"}),
    ],
)
def test_email_url_forms(url, expected):
    settings = parse_email_url(url)
    assert {key: settings[key] for key in expected} == expected


class SMTPSink(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) to accept a message: the server keeps each DATA it gets."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 sink ESMTP")
        for _ in range(100):
            line = self.rfile.readline().decode(errors="replace").strip()
            if not line:
                return
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.reply("250 sink")
            elif verb == "DATA":
                self.reply("354 end with .")
                data = []
                for _ in range(10_000):
                    body = self.rfile.readline().decode(errors="replace")
                    if body in (".\r\n", ".\n", ""):
                        break
                    data.append(body)
                self.server.messages.append("".join(data))  # type: ignore[attr-defined]
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


@pytest.fixture
def smtp_sink() -> Iterator[socketserver.ThreadingTCPServer]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SMTPSink)
    server.daemon_threads = True
    server.messages = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


PASSWORD_RESET = """
import django
django.setup()
from django.core.management import call_command
from django.contrib.auth import get_user_model
from django.test import Client
call_command("migrate", verbosity=0)
get_user_model().objects.create_user("ann", "ann@example.com", "pass-word-123")
client = Client(HTTP_HOST="switchboard.example.com")
response = client.post("/accounts/password/reset/", {"email": "ann@example.com"}, secure=True)
print("status", response.status_code)
"""


def test_password_reset_mail_goes_to_the_smtp_server_not_the_log(tmp_path, smtp_sink):
    port = smtp_sink.server_address[1]
    env = production_env(
        tmp_path,
        DJANGO_EMAIL_URL=f"smtp://127.0.0.1:{port}?timeout=5",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    result = run([sys.executable, "-c", PASSWORD_RESET], env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "status 302" in result.stdout
    assert len(smtp_sink.messages) == 1, smtp_sink.messages
    mail = smtp_sink.messages[0]
    assert "ann@example.com" in mail
    link = re.search(r"https://switchboard\.example\.com/accounts/password/reset/key/\S+", mail)
    assert link, mail
    assert link.group(0) not in result.stdout + result.stderr

"""Production settings (DJANGO_DEBUG=0): Django's deployment checklist passes, the process refuses
to start without a secret key, and plain HTTP is redirected to HTTPS except for the probes.

Each test runs Django in a subprocess, because settings are read once per process."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "SWITCHBOARD_")) and key not in {"REDIS_URL"}
    }
    env.update(
        {
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "switchboard.example.com",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "DJANGO_STATIC_ROOT": str(tmp_path / "static"),
            "DJANGO_EMAIL_URL": "smtp+tls://switchboard:secret@mail.example.com:587",
        }
    )
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_check_deploy_reports_no_issues_under_production_settings(tmp_path):
    result = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        production_env(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("secret", [None, ""], ids=["unset", "empty"])
def test_manage_py_refuses_to_start_with_debug_off_and_no_secret_key(tmp_path, secret):
    env = production_env(tmp_path)
    env.pop("DJANGO_SECRET_KEY")
    if secret is not None:
        env["DJANGO_SECRET_KEY"] = secret
    result = run([sys.executable, "manage.py", "check"], env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_daphne_refuses_to_serve_with_debug_off_and_no_secret_key(tmp_path):
    from tests.servers import free_port

    env = production_env(tmp_path)
    env.pop("DJANGO_SECRET_KEY")
    daphne = [sys.executable, "-m", "daphne", "-p", str(free_port()), "config.asgi:application"]
    result = run(daphne, env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_check_deploy_flags_a_weak_secret_key(tmp_path):
    result = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        production_env(tmp_path, DJANGO_SECRET_KEY="short"),
    )
    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


PROBE_REQUESTS = """
import json, django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="switchboard.example.com")
answers = {}
for path in ["/", "/healthz", "/metrics"]:
    response = client.get(path)
    answers[path] = [response.status_code, response.get("Location", "")]
answers["https /"] = [client.get("/healthz", secure=True).status_code, ""]
print(json.dumps(answers))
"""


def test_plain_http_redirects_to_https_but_probes_answer_directly(tmp_path):
    env = production_env(tmp_path, DJANGO_SETTINGS_MODULE="config.settings")
    result = run([sys.executable, "-c", PROBE_REQUESTS], env)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert answers["/"] == [301, "https://switchboard.example.com/"]
    assert answers["/healthz"][0] == 200
    assert answers["/metrics"][0] == 200
    assert answers["https /"][0] == 200

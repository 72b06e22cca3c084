"""The in-process tests that matter most on PostgreSQL run there too: the fuzzers and the
unstorable-text tests. PostgreSQL refuses what SQLite accepts (a NUL in text), so a fuzzer that
passes on SQLite alone proves nothing about production. The modules run in a pytest of their own,
whose settings read DATABASE_URL: the suite's private PostgreSQL (pytest-django creates and drops
its test database there)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.servers import PYTHON, ROOT

POSTGRESQL_MODULES = ["tests/test_fuzz.py", "tests/test_unstorable_text.py"]


@pytest.mark.timeout(900)
def test_fuzzers_and_unstorable_text_tests_pass_on_postgresql(postgres_server):
    env = {**os.environ, "DATABASE_URL": postgres_server}
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [PYTHON, "-m", "pytest", "-q", "-rs", *POSTGRESQL_MODULES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=880,
    )
    assert result.returncode == 0, (
        f"on PostgreSQL:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    )
    # test_unstorable_text skips its PostgreSQL-only test on any other database.
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-3000:]

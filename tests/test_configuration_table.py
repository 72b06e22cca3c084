"""Settings in one block, documented in one table.

Every environment variable Switchboard reads is read in the environment block at the top of
`config/settings.py`, and README.md's configuration table (which the documentation site includes)
lists each of them exactly once, and nothing else. A new knob read anywhere else, or missing from
the table, fails here rather than surprising an operator."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "config" / "settings.py"
README = ROOT / "README.md"
BLOCK_TITLE = "# The environment, read in one place."
RULE = re.compile(r"^# -{20,}$")
# The code Switchboard runs in production; tests, benchmarks and scripts may read what they like.
SOURCE_PACKAGES = ("config", "realtime", "chat", "notifications", "aprs_news")


def environment_reads(source: str) -> list[tuple[str, int]]:
    """(variable name, line) for each read of the environment in `source`: os.environ.get("X"),
    os.environ["X"], os.getenv("X"), and the settings' own _env_*("X", ...) helpers."""
    reads = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and node.args and _is_constant_string(node.args[0]):
            name = ast.unparse(node.func)
            if name in {"os.environ.get", "os.getenv"} or name.startswith("_env_"):
                reads.append((node.args[0].value, node.lineno))
        elif (
            isinstance(node, ast.Subscript)
            and ast.unparse(node.value) == "os.environ"
            and isinstance(node.ctx, ast.Load)
            and _is_constant_string(node.slice)
        ):
            reads.append((node.slice.value, node.lineno))
    return sorted(reads, key=lambda read: read[1])


def _is_constant_string(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def environment_block_lines(source: str) -> range:
    """The line numbers (1-based) between the block's title rule and its closing rule."""
    lines = source.splitlines()
    title = next(i for i, line in enumerate(lines) if line.strip() == BLOCK_TITLE)
    assert RULE.match(lines[title + 1]), "the block title is followed by a rule"
    end = next(i for i in range(title + 2, len(lines)) if RULE.match(lines[i]))
    return range(title + 3, end + 1)


def configuration_table_variables(readme: str) -> list[str]:
    """The variables named in the first column of README's configuration table, in order."""
    section = readme.split("<!-- --8<-- [start:configuration] -->", 1)[1]
    section = section.split("<!-- --8<-- [end:configuration] -->", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header, _rule, *body = rows
    assert header.split("|")[1].strip() == "variable", header
    names = []
    for row in body:
        first_cell = row.split("|")[1]
        names += re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell)
    return names


def test_every_environment_variable_is_read_in_the_settings_block():
    source = SETTINGS.read_text()
    block = environment_block_lines(source)
    outside = [(name, line) for name, line in environment_reads(source) if line not in block]
    assert outside == [], (
        f"read outside the environment block (lines {block.start}-{block.stop - 1}) of "
        f"config/settings.py: {outside}"
    )


def test_no_other_module_reads_the_environment():
    readers = []
    for package in SOURCE_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == SETTINGS or "tests" in path.relative_to(ROOT).parts:
                continue
            for name, line in environment_reads(path.read_text()):
                readers.append(f"{path.relative_to(ROOT)}:{line} reads {name}")
    assert readers == [], "only config/settings.py reads the environment: " + "; ".join(readers)


def test_readme_table_lists_each_variable_the_settings_read_once():
    read = {name for name, _ in environment_reads(SETTINGS.read_text())}
    listed = configuration_table_variables(README.read_text())
    twice = sorted({name for name in listed if listed.count(name) > 1})
    assert twice == [], f"listed more than once in README's configuration table: {twice}"
    assert sorted(read - set(listed)) == [], "read by config/settings.py but not in README's table"
    assert sorted(set(listed) - read) == [], (
        "in README's table but never read by config/settings.py"
    )


def test_environment_reads_finds_every_spelling():
    source = (
        'import os\nA = os.environ.get("ONE", "x")\nB = os.environ["TWO"]\nC = os.getenv("THREE")\n'
        'D = _env_bool("FOUR", False)\nos.environ["FIVE"] = "written, not read"\n'
    )
    assert environment_reads(source) == [("ONE", 2), ("TWO", 3), ("THREE", 4), ("FOUR", 5)]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "DJANGO_HSTS_SECONDS",
            "a year",
            "DJANGO_HSTS_SECONDS must be a whole number of 0 or more",
        ),
        ("DJANGO_HSTS_SECONDS", "-1", "DJANGO_HSTS_SECONDS must be a whole number of 0 or more"),
        (
            "SWITCHBOARD_APRS_DEDUPE_WINDOW_SECONDS",
            "12h",
            "SWITCHBOARD_APRS_DEDUPE_WINDOW_SECONDS must be a whole number of 0 or more",
        ),
        (
            "SWITCHBOARD_APRS_RETENTION_DAYS",
            "0",
            "SWITCHBOARD_APRS_RETENTION_DAYS must be a whole number of 1 or more, got '0'",
        ),
    ],
)
def test_a_bad_number_stops_the_settings_with_the_variable_named(variable, value, expected):
    environment = {
        key: item
        for key, item in os.environ.items()
        if not key.startswith(("DJANGO_", "SWITCHBOARD_"))
    }
    environment.update({"DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "1"})
    environment[variable] = value
    result = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; settings.INSTALLED_APPS"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and expected in result.stderr, result.stderr


def test_the_numbers_arrive_in_the_settings():
    environment = {
        key: item
        for key, item in os.environ.items()
        if not key.startswith(("DJANGO_", "SWITCHBOARD_"))
    }
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "a-test-key-" + "x" * 50,
            "DJANGO_HSTS_SECONDS": "600",
            "DJANGO_EMAIL_URL": "dummy://",
            "SWITCHBOARD_APRS_DEDUPE_WINDOW_SECONDS": "3600",
            "SWITCHBOARD_APRS_RETENTION_DAYS": "2",
        }
    )
    code = (
        "from django.conf import settings; "
        "print(settings.SECURE_HSTS_SECONDS, settings.APRS_DEDUPE_WINDOW_SECONDS, "
        "settings.APRS_RETENTION_DAYS)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == ["600", "3600", "2"], result.stderr

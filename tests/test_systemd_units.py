"""deploy/systemd/: the units pass `systemd-analyze verify` (with the install paths pointed at this
checkout, since verify checks that the executables exist), every ExecStart runs a management
command with arguments that command accepts, and a web process is given longer than its drain
grace to stop before systemd kills it.

`systemd-analyze verify` needs no running systemd (no PID 1, no D-Bus), so it runs in a container
too; scripts/install-system-deps.sh installs the `systemd` package where the tool is missing."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"
INSTALL_DIR = "/opt/switchboard"
#: The unit names to verify: templates with an example instance.
INSTANCES = {
    "switchboard-web@.service": "switchboard-web@8001.service",
    "switchboard-worker@.service": "switchboard-worker@1.service",
}


def unit_files() -> list[Path]:
    return sorted(UNITS.glob("switchboard*"))


def parse(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def exec_start(path: Path, instance: str = "8001") -> list[str]:
    return shlex.split(parse(path)["Service"]["ExecStart"].replace("%i", instance))


def test_units_for_web_worker_gateway_and_a_target_exist():
    names = {path.name for path in unit_files()}
    assert {
        "switchboard-web@.service",
        "switchboard-worker@.service",
        "switchboard-gateway.service",
        "switchboard.target",
    } <= names


def test_systemd_analyze_verify_accepts_every_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail(
            "systemd-analyze is missing: run scripts/install-system-deps.sh (make test does)"
        )
    names = []
    for path in unit_files():
        text = path.read_text()
        text = text.replace(f"{INSTALL_DIR}/.venv/bin/python", sys.executable)
        text = text.replace(f"WorkingDirectory={INSTALL_DIR}", f"WorkingDirectory={ROOT}")
        (tmp_path / path.name).write_text(text)
        names.append(f"./{INSTANCES.get(path.name, path.name)}")
    result = subprocess.run(
        [analyze, "verify", "--man=no", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == "", result.stdout + result.stderr


@pytest.mark.parametrize("path", [p for p in unit_files() if p.suffix == ".service"], ids=str)
def test_every_unit_runs_a_management_command_with_arguments_it_accepts(path):
    words = exec_start(path)
    assert words[0] == f"{INSTALL_DIR}/.venv/bin/python"
    assert words[1] == "manage.py"
    name, arguments = words[2], words[3:]
    assert name in get_commands(), f"{path.name} runs manage.py {name}, which does not exist"
    command = load_command_class(get_commands()[name], name)
    command.create_parser("manage.py", name).parse_args(arguments)  # SystemExit on a bad flag
    service = parse(path)["Service"]
    assert service["EnvironmentFile"] == "/etc/switchboard/switchboard.env"
    assert service["Restart"] == "always"
    assert service["User"] == "switchboard"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"


def test_web_units_listen_on_loopback_behind_the_proxy_and_outlast_the_drain_grace():
    from django.conf import settings

    path = UNITS / "switchboard-web@.service"
    words = exec_start(path, "8001")
    assert words[words.index("--host") + 1] == "127.0.0.1"
    assert words[words.index("--port") + 1] == "8001"
    assert "--proxy-headers" in words
    service = parse(path)["Service"]
    assert service["KillSignal"] == "SIGTERM"
    assert float(service["TimeoutStopSec"]) > settings.REALTIME_SHUTDOWN_GRACE

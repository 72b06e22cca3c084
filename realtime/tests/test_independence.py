"""The core stands alone: no module of `realtime` imports Django Channels or any of our apps."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REALTIME = Path(__file__).resolve().parent.parent
FORBIDDEN_TOP_LEVEL = {"channels", "chat", "notifications", "aprs_news", "config"}


def core_modules() -> list[Path]:
    return sorted(
        module
        for module in REALTIME.rglob("*.py")
        if "tests" not in module.relative_to(REALTIME).parts
    )


def imported_top_level_names(module: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text(), filename=str(module))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_modules_are_found() -> None:
    found = {module.relative_to(REALTIME).as_posix() for module in core_modules()}
    assert {"routing.py", "consumer.py", "generic/websocket.py", "layers/__init__.py"} <= found


@pytest.mark.parametrize(
    "module", core_modules(), ids=lambda module: module.relative_to(REALTIME).as_posix()
)
def test_core_module_imports_neither_channels_nor_an_app(module: Path) -> None:
    assert imported_top_level_names(module) & FORBIDDEN_TOP_LEVEL == set()


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "sneaky.py"
    module.write_text("from channels.layers import get_channel_layer\nimport chat.models\n")
    assert imported_top_level_names(module) == {"channels", "chat"}

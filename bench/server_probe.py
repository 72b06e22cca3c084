"""Run a server under a probe that times a full garbage collection on demand.

    python bench/server_probe.py -m daphne ... | python bench/server_probe.py manage.py serve ...

The probe installs a SIGUSR1 handler, then runs the module (`-m name`) or script exactly as
``python`` would. On SIGUSR1 it runs ``gc.collect()`` (all generations) in the server's main
thread, between two of its callbacks, and writes ``{"pause_ms", "collected", "tracked",
"frozen"}`` as JSON to the file named by SB_BENCH_PROBE_FILE: the pause a full collection costs
that process at that moment. Benchmarks only (`harness.Server(probe=True)`).
"""

from __future__ import annotations

import gc
import json
import os
import runpy
import signal
import sys
import time


def full_collection(signum: int, frame: object) -> None:
    started = time.perf_counter()
    collected = gc.collect()
    pause = time.perf_counter() - started
    report = {
        "pause_ms": round(pause * 1000, 2),
        "collected": collected,
        "tracked": len(gc.get_objects()),
        "frozen": gc.get_freeze_count(),
    }
    path = os.environ["SB_BENCH_PROBE_FILE"]
    with open(path + ".tmp", "w") as file:
        json.dump(report, file)
    os.replace(path + ".tmp", path)


def main() -> None:
    signal.signal(signal.SIGUSR1, full_collection)
    arguments = sys.argv[1:]
    if arguments[:1] == ["-m"]:
        sys.argv = [arguments[1], *arguments[2:]]
        sys.path[0] = os.getcwd()
        runpy.run_module(arguments[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = arguments
        sys.path[0] = os.path.dirname(os.path.abspath(arguments[0]))
        runpy.run_path(arguments[0], run_name="__main__")


if __name__ == "__main__":
    main()

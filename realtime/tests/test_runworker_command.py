"""`manage.py runworker` as a real process, serving realtime/tests/server_app.py's channel route.

With the in-memory layer nothing outside the process can reach the worker, so the message tests
run on a private redis-server with the Redis layer (REDIS_URL), the way production runs workers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from realtime.layers.redis import RedisChannelLayer
from realtime.tests.server_app import JOBS_CHANNEL
from tests.servers import PYTHON, ROOT, stop_process

APPLICATION = "realtime.tests.server_app.application"


def worker_env(tmp_path: Path, redis_url: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "SERVER_TEST_JOB_LOG": str(tmp_path / "jobs.log"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def start_worker(tmp_path: Path, *channels: str, redis_url: str | None = None):
    output = open(tmp_path / "worker.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [PYTHON, "manage.py", "runworker", "--application", APPLICATION, *channels],
        cwd=ROOT,
        env=worker_env(tmp_path, redis_url),
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    wait_for_text(tmp_path / "worker.log", "Worker listening on channels", process=process)
    return process


def wait_for_text(path: Path, text: str, timeout: float = 30.0, process=None) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.05)
    content = path.read_text() if path.exists() else ""
    raise AssertionError(f"{text!r} not found in {path.name}:\n{content}")


@pytest.fixture
def worker_process():
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        stop_process(process, signal.SIGKILL)


def test_runworker_all_waiting_for_messages_stops_cleanly_on_sigint_with_exit_code_0(
    tmp_path, worker_process
):
    process = start_worker(tmp_path, "--all")
    worker_process.append(process)
    assert f"Worker listening on channels {JOBS_CHANNEL}" in (tmp_path / "worker.log").read_text()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0
    assert "Worker stopped" in (tmp_path / "worker.log").read_text()


def test_runworker_refuses_a_channel_without_a_route_and_lists_the_known_ones(tmp_path):
    result = subprocess.run(
        [PYTHON, "manage.py", "runworker", "--application", APPLICATION, "nope"],
        cwd=ROOT,
        env=worker_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "No channel route for 'nope'" in result.stderr
    assert JOBS_CHANNEL in result.stderr


async def send_jobs(redis_url: str, *messages: dict) -> None:
    layer = RedisChannelLayer(hosts=[redis_url])
    try:
        for message in messages:
            await layer.send(JOBS_CHANNEL, message)
    finally:
        await layer.close()


async def receive_job(redis_url: str) -> dict:
    layer = RedisChannelLayer(hosts=[redis_url])
    try:
        return await asyncio.wait_for(layer.receive(JOBS_CHANNEL), 10)
    finally:
        await layer.close()


def test_sigterm_finishes_the_message_in_hand_sent_by_another_process_and_leaves_the_rest_queued(
    tmp_path, fresh_redis, worker_process
):
    process = start_worker(tmp_path, JOBS_CHANNEL, redis_url=fresh_redis.url)
    worker_process.append(process)
    asyncio.run(
        send_jobs(
            fresh_redis.url,
            {"type": "job.run", "name": "slow", "slow": True},
            {"type": "job.run", "name": "next"},
        )
    )
    jobs_log = tmp_path / "jobs.log"
    wait_for_text(jobs_log, "start slow")
    process.send_signal(signal.SIGTERM)
    wait_for_text(tmp_path / "worker.log", "SIGTERM: stopping after the messages in hand")
    time.sleep(0.2)
    assert process.poll() is None, "the worker exited with a message in hand"
    Path(f"{jobs_log}.release").touch()
    assert process.wait(timeout=20) == 0
    assert jobs_log.read_text() == "start slow\nend slow\n"
    assert asyncio.run(receive_job(fresh_redis.url))["name"] == "next"

"""Batcher: requests made together are served together, each gets its own answer, in order."""

import asyncio

import pytest

from realtime.batching import Batcher


class Recorder:
    """A serve function that records its batches and answers each request from `answer`."""

    def __init__(self, answer=lambda r: r * 10, pause: float = 0.0) -> None:
        self.batches: list[list] = []
        self.answer = answer
        self.pause = pause

    async def __call__(self, requests: list) -> list:
        self.batches.append(list(requests))
        await asyncio.sleep(self.pause)
        return [self.answer(r) for r in requests]


async def test_requests_made_together_are_one_batch_and_each_gets_its_answer():
    serve = Recorder()
    batcher = Batcher(serve)
    answers = await asyncio.gather(*(batcher.submit(n) for n in range(5)))
    assert answers == [0, 10, 20, 30, 40]
    assert serve.batches == [[0, 1, 2, 3, 4]]


async def test_a_request_alone_is_served_alone():
    serve = Recorder()
    batcher = Batcher(serve)
    assert await batcher.submit(1) == 10
    assert await batcher.submit(2) == 20
    assert serve.batches == [[1], [2]]


async def test_an_exception_answers_only_its_own_request():
    def answer(r):
        return ValueError(f"bad {r}") if r == 2 else r

    batcher = Batcher(Recorder(answer))
    results = await asyncio.gather(*(batcher.submit(n) for n in range(4)), return_exceptions=True)
    assert results[:2] == [0, 1] and results[3] == 3
    assert isinstance(results[2], ValueError) and str(results[2]) == "bad 2"


async def test_a_failing_batch_fails_each_of_its_requests_and_the_next_batch_still_runs():
    calls = []

    async def serve(requests):
        calls.append(requests)
        if len(calls) == 1:
            raise ConnectionError("down")
        return requests

    batcher = Batcher(serve)
    failed = await asyncio.gather(*(batcher.submit(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(e, ConnectionError) for e in failed)
    assert await batcher.submit(7) == 7


async def test_requests_made_while_a_batch_is_served_form_the_next_batch_in_order():
    serve = Recorder(pause=0.05)
    batcher = Batcher(serve)
    first = asyncio.ensure_future(batcher.submit(0))
    await asyncio.sleep(0.01)  # the first batch is in flight
    later = [asyncio.ensure_future(batcher.submit(n)) for n in range(1, 6)]
    assert await asyncio.gather(first, *later) == [0, 10, 20, 30, 40, 50]
    assert serve.batches == [[0], [1, 2, 3, 4, 5]]


async def test_batches_are_capped_at_max_size():
    serve = Recorder()
    batcher = Batcher(serve, max_size=2)
    assert await asyncio.gather(*(batcher.submit(n) for n in range(5))) == [0, 10, 20, 30, 40]
    assert serve.batches == [[0, 1], [2, 3], [4]]


async def test_a_cancelled_caller_does_not_withdraw_its_request_or_disturb_the_others():
    serve = Recorder(pause=0.05)
    batcher = Batcher(serve)
    gone = asyncio.ensure_future(batcher.submit(1))
    stays = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0.01)
    gone.cancel()
    assert await stays == 20
    assert serve.batches == [[1, 2]]


async def test_an_answer_list_of_the_wrong_length_fails_the_batch():
    async def serve(requests):
        return requests[:-1]

    batcher = Batcher(serve)
    with pytest.raises(RuntimeError, match="answered 1 of a batch of 2"):
        await asyncio.gather(batcher.submit(1), batcher.submit(2))


def test_max_size_must_be_positive():
    with pytest.raises(ValueError, match="got 0"):
        Batcher(Recorder(), max_size=0)

"""realtime.backoff: the one exponential back-off every retry loop uses."""

import math

import pytest

from realtime.backoff import Backoff
from realtime.worker import LAYER_ERROR_BACKOFF


def test_delay_grows_by_the_factor_up_to_the_maximum():
    backoff = Backoff(initial=1, maximum=8)
    assert [backoff.delay(attempt) for attempt in range(6)] == [1, 2, 4, 8, 8, 8]
    assert [Backoff(initial=0.5, maximum=10, factor=3).delay(n) for n in range(4)] == [
        0.5,
        1.5,
        4.5,
        10,
    ]


def test_jitter_spreads_each_delay_within_its_fraction():
    backoff = Backoff(initial=4, maximum=60, jitter=0.25)
    delays = [backoff.delay(0) for _ in range(50)]
    assert all(3 <= delay <= 5 for delay in delays)
    assert len(set(delays)) > 1, "jittered delays differ, so clients do not retry in step"
    capped = [Backoff(initial=1, maximum=2, jitter=0.5).delay(10) for _ in range(50)]
    assert all(1 <= delay <= 3 for delay in capped)


def test_a_long_outage_stays_at_the_maximum_without_overflowing():
    assert Backoff(initial=0.05, maximum=5).delay(100_000) == 5


def test_worker_retries_a_failing_layer_after_a_fifth_of_a_second_doubling_to_five():
    delays = [LAYER_ERROR_BACKOFF.delay(failures) for failures in range(1, 8)]
    assert delays == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"initial": -1}, "initial must be 0 or more seconds, got -1"),
        ({"initial": 2, "maximum": 1}, "maximum must be at least initial (2), got 1"),
        ({"factor": 0.5}, "factor must be 1 or more, got 0.5"),
        ({"jitter": 1}, "jitter must be a fraction from 0 to below 1, got 1"),
        ({"jitter": -0.1}, "jitter must be a fraction from 0 to below 1, got -0.1"),
        ({"maximum": math.inf}, "maximum must be finite, got inf"),
        ({"initial": math.nan}, "initial must be finite, got nan"),
    ],
)
def test_a_bad_value_is_refused_when_the_backoff_is_made(options, complaint):
    with pytest.raises(ValueError) as refused:
        Backoff(**options)
    assert complaint in str(refused.value)


def test_a_value_that_is_not_a_number_is_a_type_error():
    with pytest.raises(TypeError, match="Backoff maximum must be a number, got '60'"):
        Backoff(maximum="60")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Backoff jitter must be a number, got True"):
        Backoff(jitter=True)


def test_a_negative_attempt_is_refused():
    with pytest.raises(ValueError, match="attempt must be 0 or more, got -1"):
        Backoff().delay(-1)


def test_backoff_is_a_frozen_value():
    backoff = Backoff(initial=1, maximum=2)
    assert backoff == Backoff(initial=1, maximum=2)
    with pytest.raises(AttributeError):
        backoff.maximum = 3  # type: ignore[misc]

"""Exponential back-off: how long to wait before trying again, as one small value.

Everything that reconnects or retries (the worker after a failing channel layer, the APRS-IS
gateway after a dropped connection) describes its waits with a `Backoff` instead of repeating the
formula::

    RETRY = Backoff(initial=0.1, maximum=5.0)            # 0.1, 0.2, 0.4, ... 5.0, 5.0 s
    await asyncio.sleep(RETRY.delay(failures))

    Backoff(initial=1.0, maximum=60.0, jitter=0.25)      # 1 s +/- 25 %, 2 s +/- 25 %, ...

``delay(attempt)`` is ``initial * factor ** attempt``, capped at ``maximum``, then spread by
``jitter`` (a fraction: 0.25 means anywhere from 75 % to 125 % of it), so that many clients cut off
at once do not all come back in step. Attempts count from 0: whether the first wait is ``initial``
(``delay(0)``) or already doubled (``delay(1)``) is the caller's choice of counter. A bad value is
refused when the `Backoff` is made, with the value in the message.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# 2 ** 64 times any sensible initial delay is far past any cap; larger exponents only risk
# OverflowError in float arithmetic.
_MAX_EXPONENT = 64

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Waits that grow by `factor` from `initial` seconds up to `maximum`, each +/- `jitter`."""

    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        for name in ("initial", "maximum", "factor", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"Backoff {name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"Backoff {name} must be finite, got {value!r}")
        if self.initial < 0:
            raise ValueError(f"Backoff initial must be 0 or more seconds, got {self.initial!r}")
        if self.maximum < self.initial:
            raise ValueError(
                f"Backoff maximum must be at least initial ({self.initial!r}), got {self.maximum!r}"
            )
        if self.factor < 1:
            raise ValueError(f"Backoff factor must be 1 or more, got {self.factor!r}")
        if not 0 <= self.jitter < 1:
            raise ValueError(
                f"Backoff jitter must be a fraction from 0 to below 1, got {self.jitter!r}"
            )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before try number `attempt` (0, 1, 2, ...)."""
        if attempt < 0:
            raise ValueError(f"attempt must be 0 or more, got {attempt!r}")
        base = min(self.maximum, self.initial * self.factor ** min(attempt, _MAX_EXPONENT))
        if not self.jitter:
            return base
        return base * (1 + random.uniform(-self.jitter, self.jitter))

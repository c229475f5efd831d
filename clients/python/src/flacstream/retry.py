"""Retrying refusals that say "later": 429 and 503, before any audio is sent.

The server answers ``rate_limited`` with ``Retry-After`` (whole seconds) and
``session_owned_elsewhere`` with one too; ``server_busy`` and ``draining``
come without. A retry waits ``Retry-After`` when given, else an exponential
backoff with jitter; both are bounded by :attr:`RetryPolicy.max_delay` and
the whole by :attr:`RetryPolicy.max_attempts`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import ServerError

#: HTTP statuses worth another attempt of the same request.
RETRYABLE_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """How refusals with 429 or 503 are retried.

    Attributes:
        max_attempts: attempts in all, the first included (1: never retry).
        base_delay: the first backoff in seconds when no ``Retry-After`` is
            given; it doubles per attempt, with up to half of it random.
        max_delay: the longest wait in seconds for one retry. A ``Retry-After``
            longer than this is not waited for: the error is raised at once.
    """

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("max_attempts must be >= 1 and delays >= 0")

    def delay(self, error: ServerError, attempt: int) -> float | None:
        """Seconds to wait before attempt ``attempt + 1`` after ``error`` on
        attempt ``attempt`` (1-based), or None to give up."""
        if error.status not in RETRYABLE_STATUSES or attempt >= self.max_attempts:
            return None
        if error.retry_after is not None:
            wait = float(error.retry_after)
            return wait if wait <= self.max_delay else None
        backoff = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return backoff / 2 + random.uniform(0, backoff / 2)


#: Never retry.
NO_RETRY = RetryPolicy(max_attempts=1)

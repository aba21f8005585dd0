"""The rating function: what a call costs under a plan. Integers only."""

from __future__ import annotations

from dataclasses import dataclass

from novitrac_billing.plans import Increment


@dataclass(frozen=True)
class Rated:
    """A call's price.

    Attributes:
        billed_seconds: the duration after the increment and the minimum.
        rate_per_minute: the rate applied, in the smallest unit per minute.
        amount: what the call costs, in the smallest unit.
    """

    billed_seconds: int
    rate_per_minute: int
    amount: int


def rate_call(
    *, duration_s: int, rate_per_minute: int, increment: Increment, minimum_seconds: int
) -> Rated:
    """Price a call of ``duration_s`` seconds.

    A call that was never answered (0 s) costs nothing. Otherwise the duration is raised to the
    plan's minimum, then billed per second (the amount rounded up to the next smallest unit) or
    per started minute.
    """
    if duration_s < 0 or rate_per_minute < 0 or minimum_seconds < 0:
        raise ValueError("durations and rates are never negative")
    if duration_s == 0:
        return Rated(0, rate_per_minute, 0)
    seconds = max(duration_s, minimum_seconds)
    if increment == "minute":
        minutes = -(-seconds // 60)
        return Rated(minutes * 60, rate_per_minute, minutes * rate_per_minute)
    return Rated(seconds, rate_per_minute, -(-seconds * rate_per_minute // 60))

"""The rating function's properties, for every plan shape (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from novitrac_billing.plans import Increment
from novitrac_billing.rating import rate_call

durations = st.integers(min_value=0, max_value=6 * 3600)
rates = st.integers(min_value=0, max_value=10_000)
increments: st.SearchStrategy[Increment] = st.sampled_from(["second", "minute"])
minimums = st.integers(min_value=0, max_value=600)


@given(durations, rates, increments, minimums)
def test_never_negative_and_integer(
    duration: int, rate: int, increment: Increment, minimum: int
) -> None:
    rated = rate_call(
        duration_s=duration, rate_per_minute=rate, increment=increment, minimum_seconds=minimum
    )

    assert isinstance(rated.amount, int)
    assert rated.amount >= 0
    assert rated.billed_seconds >= 0


@given(durations, durations, rates, increments, minimums)
def test_monotone_in_duration(
    first: int, second: int, rate: int, increment: Increment, minimum: int
) -> None:
    shorter, longer = sorted((first, second))
    price = {
        d: rate_call(
            duration_s=d, rate_per_minute=rate, increment=increment, minimum_seconds=minimum
        )
        for d in (shorter, longer)
    }

    assert price[shorter].amount <= price[longer].amount
    assert price[shorter].billed_seconds <= price[longer].billed_seconds


@given(st.integers(min_value=1, max_value=6 * 3600), rates, minimums)
def test_per_started_minute(duration: int, rate: int, minimum: int) -> None:
    rated = rate_call(
        duration_s=duration, rate_per_minute=rate, increment="minute", minimum_seconds=minimum
    )

    assert rated.billed_seconds % 60 == 0
    assert rated.billed_seconds >= max(duration, minimum)
    assert rated.billed_seconds - max(duration, minimum) < 60
    assert rated.amount == rated.billed_seconds // 60 * rate


@given(st.integers(min_value=1, max_value=6 * 3600), rates, minimums)
def test_per_second_rounds_up_to_the_smallest_unit(duration: int, rate: int, minimum: int) -> None:
    rated = rate_call(
        duration_s=duration, rate_per_minute=rate, increment="second", minimum_seconds=minimum
    )

    assert rated.billed_seconds == max(duration, minimum)
    exact = rated.billed_seconds * rate
    assert rated.amount * 60 >= exact
    assert rated.amount * 60 - exact < 60


@given(rates, increments, minimums)
def test_an_unanswered_call_costs_nothing(rate: int, increment: Increment, minimum: int) -> None:
    rated = rate_call(
        duration_s=0, rate_per_minute=rate, increment=increment, minimum_seconds=minimum
    )

    assert (rated.amount, rated.billed_seconds) == (0, 0)


@given(st.integers(min_value=1, max_value=600), st.integers(min_value=1, max_value=10_000))
def test_the_minimum_is_billed_for_short_calls(minimum: int, rate: int) -> None:
    short = rate_call(
        duration_s=1, rate_per_minute=rate, increment="second", minimum_seconds=minimum
    )
    at_minimum = rate_call(
        duration_s=minimum, rate_per_minute=rate, increment="second", minimum_seconds=minimum
    )

    assert short == at_minimum

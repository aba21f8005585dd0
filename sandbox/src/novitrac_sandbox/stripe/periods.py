"""Billing periods: adding a price's ``recurring`` interval to a unix time, calendar-aware."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta


def advance(timestamp: int, interval: str, count: int = 1) -> int:
    """``timestamp`` moved ``count`` intervals (``day``, ``week``, ``month``, ``year``) later."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    if interval == "day":
        moment += timedelta(days=count)
    elif interval == "week":
        moment += timedelta(weeks=count)
    else:
        months = count * (12 if interval == "year" else 1)
        month_index = moment.month - 1 + months
        year, month = moment.year + month_index // 12, month_index % 12 + 1
        day = min(moment.day, calendar.monthrange(year, month)[1])
        moment = moment.replace(year=year, month=month, day=day)
    return int(moment.timestamp())

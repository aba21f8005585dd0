"""Live signals go out after the transaction that caused them has committed."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import BackgroundTasks

from novitrac_contracts.envelope import Envelope
from novitrac_telephony.deps import Telephony

logger = logging.getLogger(__name__)


async def publish(telephony: Telephony, signals: Sequence[Envelope]) -> None:
    """Publish ``signals``; losing one is acceptable, failing the caller for one is not."""
    for signal in signals:
        try:
            await telephony.bus.publish_live(signal)
        except Exception:
            logger.warning("live.publish_failed", extra={"type": signal.type}, exc_info=True)


def publish_later(
    background: BackgroundTasks, telephony: Telephony, signals: Sequence[Envelope]
) -> None:
    """Publish ``signals`` once the response (and so the request's commit) is done."""
    if signals:
        background.add_task(publish, telephony, list(signals))

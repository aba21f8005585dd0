"""The notifications service's definition, found by `novitrac` through its entry point."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from novitrac_kit.runtime import ServiceContext
from novitrac_kit.service import Database, DevelopmentSite, Service
from novitrac_notifications.config import Settings
from novitrac_notifications.db import inbox, metadata, outbox
from novitrac_notifications.delivery import Backoff, DeliveryWorker
from novitrac_notifications.endpoints import router
from novitrac_notifications.handlers import handlers
from novitrac_notifications.smtp import SmtpMailer
from novitrac_notifications.webhook_endpoints import router as webhook_router
from novitrac_notifications.webhook_sender import WebhookSender
from novitrac_notifications.webhooks import check_secret_key, seal_clear_secrets, secret_sealer

logger = logging.getLogger(__name__)


def mailer_from(settings: Settings) -> SmtpMailer:
    """The SMTP adapter the settings describe."""
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return SmtpMailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.mail_from,
        sender_address=settings.mail_from_address,
        username=settings.smtp_username,
        password=password,
        start_tls=settings.smtp_starttls,
        use_tls=settings.smtp_tls,
        timeout=settings.smtp_timeout,
    )


@asynccontextmanager
async def lifespan(context: ServiceContext) -> AsyncIterator[None]:
    """Run the email delivery worker and the webhook sender beside the API and the consumer."""
    settings = context.settings
    if not isinstance(settings, Settings):
        raise TypeError("the notifications service needs its own Settings")
    if context.engine is None:
        raise RuntimeError("the notifications service needs its database")
    worker = DeliveryWorker(
        context.engine,
        mailer_from(settings),
        dashboard_url=settings.dashboard_url,
        backoff=Backoff(
            max_attempts=settings.delivery_max_attempts,
            base=settings.delivery_backoff_base,
            max_delay=settings.delivery_backoff_max,
        ),
        batch_size=settings.delivery_batch_size,
        poll_interval=settings.delivery_poll_interval,
    )
    sealer = secret_sealer(settings.secret_encryption_key.get_secret_value())
    # A wrong key refuses to start here (WrongSecretKey), before anything is sealed under it.
    if await check_secret_key(context.engine, sealer):
        logger.info("notifications.secret_key_check_written")
    sealed = await seal_clear_secrets(context.engine, sealer)
    if sealed:
        logger.info("notifications.webhook_secrets_sealed", extra={"endpoints": sealed})
    sender = WebhookSender(
        context.engine,
        sealer=sealer,
        environment=settings.environment,
        retry_schedule=settings.webhook_retry_schedule,
        timeout=settings.webhook_timeout,
        max_consecutive_failures=settings.webhook_max_consecutive_failures,
        concurrency=settings.webhook_concurrency,
        endpoint_concurrency=settings.webhook_endpoint_concurrency,
        poll_interval=settings.webhook_poll_interval,
    )
    await worker.start()
    try:
        await sender.start()
        try:
            yield
        finally:
            await sender.stop(grace=5.0)
    finally:
        await worker.stop()


SANDBOX_SMTP_PORT = 2525
GATEWAY_PORT = 8000


def development_environment(site: DevelopmentSite) -> dict[str, str]:
    """Development mode sends to the sandbox's SMTP sink and links to the local gateway."""
    return {
        # Fixed, so that a restart still opens the secrets stored under it.
        "NOTIFICATIONS_SECRET_ENCRYPTION_KEY": "novitrac development key, not a secret",
        "NOTIFICATIONS_SMTP_HOST": site.host,
        "NOTIFICATIONS_SMTP_PORT": str(site.port(SANDBOX_SMTP_PORT)),
        "NOTIFICATIONS_DASHBOARD_URL": site.url(GATEWAY_PORT),
    }


service = Service(
    name="notifications",
    title="Novitrac notifications",
    settings=Settings,
    port=8005,
    database=Database(
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        outbox=outbox,
        inbox=inbox,
    ),
    routers=[router, webhook_router],
    handlers=handlers,
    lifespan=lifespan,
    development_environment=development_environment,
)

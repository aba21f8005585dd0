"""``novitrac run <service>``: one service as its own process, as containers and Kubernetes do."""

from __future__ import annotations

import gc

import uvicorn

from novitrac_kit.bus.rabbitmq import RabbitBus
from novitrac_kit.config import load_settings
from novitrac_kit.runtime import create_app
from novitrac_kit.service import Service
from novitrac_kit.telemetry import configure_logging, configure_tracing, instrument_httpx


def run_service(service: Service, *, host: str | None = None, port: int | None = None) -> None:
    """Serve ``service`` with the RabbitMQ transport until SIGINT or SIGTERM."""
    settings = load_settings(service.settings)
    configure_logging(service.name, level=settings.log_level, fmt=settings.log_format)
    configure_tracing(
        service.name,
        otlp_endpoint=settings.otel_exporter_otlp_endpoint,
        sample_ratio=settings.otel_sample_ratio,
    )
    instrument_httpx()
    bus = RabbitBus(settings.amqp_url.get_secret_value(), connection_name=service.name)
    app = create_app(service, settings=settings, bus=bus, owns_bus=True)
    # Everything imported so far lives as long as the process: keep the collector from scanning it
    # again and again, which is what long full collections (and latency spikes) are made of.
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=host or settings.http_host,
        port=port or settings.http_port or service.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
        # Compressing every frame costs more CPU than the bandwidth it saves on dashboards' small
        # JSON messages and on media frames that do not compress.
        ws_per_message_deflate=False,
    )

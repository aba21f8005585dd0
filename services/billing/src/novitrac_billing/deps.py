"""Request dependencies: the service's settings and its Stripe gateway."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from novitrac_billing.config import Settings
from novitrac_billing.stripe_gateway import StripeGateway
from novitrac_kit.runtime import ContextDep, ServiceContext

_gateways: dict[int, StripeGateway] = {}


def gateway_for(settings: Settings) -> StripeGateway:
    """The Stripe gateway configured by ``settings`` (one per settings object)."""
    gateway = _gateways.get(id(settings))
    if gateway is None:
        gateway = _gateways[id(settings)] = StripeGateway(
            secret_key=settings.stripe_secret_key.get_secret_value(),
            api_base=settings.stripe_api_base,
        )
    return gateway


def settings_of(context: ServiceContext) -> Settings:
    """Billing's own settings from the running service."""
    settings = context.settings
    if not isinstance(settings, Settings):
        raise RuntimeError("billing runs with novitrac_billing.config.Settings")
    return settings


def get_settings(context: ContextDep) -> Settings:
    """Billing's settings (a FastAPI dependency)."""
    return settings_of(context)


def get_gateway(context: ContextDep) -> StripeGateway:
    """The Stripe gateway (a FastAPI dependency)."""
    return gateway_for(settings_of(context))


SettingsDep = Annotated[Settings, Depends(get_settings)]
GatewayDep = Annotated[StripeGateway, Depends(get_gateway)]

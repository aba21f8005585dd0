"""Settings of the billing service: the shared NOVITRAC_* ones plus its own BILLING_* ones."""

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from novitrac_kit.config import ServiceSettings


class Settings(ServiceSettings):
    """Billing's own settings (``BILLING_*``).

    Attributes:
        stripe_api_base: Stripe's API address (``BILLING_STRIPE_API_BASE``); the sandbox in
            development.
        stripe_secret_key: the ``sk_…`` key (``BILLING_STRIPE_SECRET_KEY``), required.
        stripe_webhook_secret: the endpoint's ``whsec_…`` secret
            (``BILLING_STRIPE_WEBHOOK_SECRET``), required.
        stripe_webhook_tolerance: seconds a webhook's signed timestamp may be off our clock, in
            either direction (``BILLING_STRIPE_WEBHOOK_TOLERANCE``).
        stripe_meter_event_name: the Stripe meter that counts billed call seconds
            (``BILLING_STRIPE_METER_EVENT_NAME``).
        checkout_success_url: where Stripe Checkout sends the shopper after paying, unless the
            request names another (``BILLING_CHECKOUT_SUCCESS_URL``).
        checkout_cancel_url: where it sends a shopper who gives up
            (``BILLING_CHECKOUT_CANCEL_URL``).
        payment_grace_period: seconds between a failed subscription payment and suspension
            (``BILLING_PAYMENT_GRACE_PERIOD``).
        maintenance_interval: seconds between runs of the background work: meter reports to
            Stripe, grace periods that ran out, plan changes that fell due
            (``BILLING_MAINTENANCE_INTERVAL``).
    """

    model_config = SettingsConfigDict(env_prefix="BILLING_")

    stripe_api_base: str = "https://api.stripe.com"
    stripe_secret_key: SecretStr
    stripe_webhook_secret: SecretStr
    stripe_webhook_tolerance: int = Field(300, ge=1)
    stripe_meter_event_name: str = "novitrac_call_seconds"
    checkout_success_url: str = "http://127.0.0.1:8000/billing?checkout=success"
    checkout_cancel_url: str = "http://127.0.0.1:8000/billing?checkout=cancelled"
    payment_grace_period: int = Field(3 * 24 * 3600, ge=0)
    maintenance_interval: float = Field(5.0, gt=0)

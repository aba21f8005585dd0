"""The gateway service's definition, found by `novitrac` through its entry point."""

from fastapi import APIRouter
from starlette.middleware import Middleware
from starlette.routing import Route

from novitrac_gateway import openapi
from novitrac_gateway.config import Settings
from novitrac_gateway.dashboard import Dashboard
from novitrac_gateway.live.endpoint import router as live_router
from novitrac_gateway.proxy import Proxy, ProxyFirst
from novitrac_gateway.state import gateway_of, lifespan
from novitrac_kit.service import DevelopmentSite, Service

# Requests under a service's prefix reach the proxy through ProxyFirst, before any routing; this
# last route takes the rest that are not the gateway's own: the dashboard's files and pages for
# GET and HEAD, the proxy's 404 and preflights for the others.
proxy_router = APIRouter(
    routes=[Route("/{path:path}", endpoint=Dashboard(Proxy()), include_in_schema=False)]
)

# Where each service listens by default; development mode moves them all by its port offset.
SERVICE_PORTS = {
    "AUTH": 8001,
    "TELEPHONY": 8002,
    "VOICE_AI": 8003,
    "BILLING": 8004,
    "NOTIFICATIONS": 8005,
}


def development_environment(site: DevelopmentSite) -> dict[str, str]:
    """The services' addresses at development mode's port offset."""
    return {f"GATEWAY_{name}_URL": site.url(port) for name, port in SERVICE_PORTS.items()}


service = Service(
    name="gateway",
    title="Novitrac API gateway",
    settings=Settings,
    port=8000,
    routers=[
        openapi.router(lambda request: gateway_of(request.app).openapi),
        live_router,
        proxy_router,
    ],
    middleware=[Middleware(ProxyFirst)],
    lifespan=lifespan,
    development_environment=development_environment,
)

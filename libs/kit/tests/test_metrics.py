from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families

from novitrac_kit.metrics import (
    UNMATCHED_ROUTE,
    counter,
    histogram,
    instrument_metrics,
    metrics_router,
)


def service_app(service: str) -> FastAPI:
    app = FastAPI()
    calls = APIRouter(prefix="/v1/calls")

    @calls.get("/{call_id}")
    async def read_call(call_id: str) -> dict[str, str]:
        return {"call_id": call_id}

    @calls.post("/{call_id}/hangup")
    async def hang_up(call_id: str) -> dict[str, str]:
        raise RuntimeError("provider unreachable")

    admin = FastAPI()

    @admin.get("/jobs/{job_id}")
    async def read_job(job_id: str) -> dict[str, str]:
        return {"job_id": job_id}

    app.include_router(calls)
    app.include_router(metrics_router())
    app.mount("/admin", admin)
    instrument_metrics(app, service=service)
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://app")


async def samples(http: httpx.AsyncClient, name: str, service: str) -> dict[tuple[str, ...], float]:
    """Values of one sample name for one service, keyed by their other labels' values."""
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("service") == service:
                labels = {k: v for k, v in sample.labels.items() if k != "service"}
                found[tuple(labels[k] for k in sorted(labels))] = sample.value
    return found


class TestMetricsMiddleware:
    async def test_counts_by_route_template(self, unique_name: str) -> None:
        async with client(service_app(unique_name)) as http:
            await http.get("/v1/calls/CA0001")
            await http.get("/v1/calls/CA0002")

            requests = await samples(http, "novitrac_http_requests_total", unique_name)
            durations = await samples(
                http, "novitrac_http_request_duration_seconds_count", unique_name
            )

        # Keys are the label values in name order: method, route, status.
        assert requests[("GET", "/v1/calls/{call_id}", "200")] == 2
        assert durations[("GET", "/v1/calls/{call_id}")] == 2
        assert not any("CA0001" in "".join(key) for key in requests)

    async def test_unmatched_paths_share_one_series(self, unique_name: str) -> None:
        async with client(service_app(unique_name)) as http:
            for n in range(3):
                await http.get(f"/scan/{n}")

            requests = await samples(http, "novitrac_http_requests_total", unique_name)

        assert requests[("GET", UNMATCHED_ROUTE, "404")] == 3

    async def test_handler_error_counts_as_500(self, unique_name: str) -> None:
        async with client(service_app(unique_name)) as http:
            response = await http.post("/v1/calls/CA1/hangup")

            requests = await samples(http, "novitrac_http_requests_total", unique_name)

        assert response.status_code == 500
        assert requests[("POST", "/v1/calls/{call_id}/hangup", "500")] == 1

    async def test_mounted_app_route_keeps_its_prefix(self, unique_name: str) -> None:
        async with client(service_app(unique_name)) as http:
            await http.get("/admin/jobs/77")

            requests = await samples(http, "novitrac_http_requests_total", unique_name)

        assert requests[("GET", "/admin/jobs/{job_id}", "200")] == 1

    async def test_services_in_one_process_are_told_apart(self, unique_name: str) -> None:
        billing, telephony = f"{unique_name}_billing", f"{unique_name}_telephony"
        billing_app, telephony_app = service_app(billing), service_app(telephony)
        instrument_metrics(billing_app, service=billing)

        async with client(billing_app) as http_billing, client(telephony_app) as http_telephony:
            await http_billing.get("/v1/calls/1")
            await http_telephony.get("/v1/calls/1")
            await http_telephony.get("/v1/calls/2")

            seen_by_billing = await samples(http_billing, "novitrac_http_requests_total", telephony)
            billing_counts = await samples(http_telephony, "novitrac_http_requests_total", billing)

        assert seen_by_billing[("GET", "/v1/calls/{call_id}", "200")] == 2
        assert billing_counts[("GET", "/v1/calls/{call_id}", "200")] == 1


class TestRegistration:
    def test_same_metric_twice_is_the_same_collector(self, unique_name: str) -> None:
        first = counter(f"novitrac_{unique_name}_events_total", "Events.", ("service",))
        second = counter(f"novitrac_{unique_name}_events_total", "Events.", ("service",))

        assert first is second
        assert isinstance(first, Counter)

    def test_name_taken_by_another_kind_fails(self, unique_name: str) -> None:
        counter(f"novitrac_{unique_name}_latency_seconds", "Oops, a counter.")

        with pytest.raises(ValueError, match="Duplicated"):
            histogram(f"novitrac_{unique_name}_latency_seconds", "Latency.")

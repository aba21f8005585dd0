"""The Kubernetes manifests (deploy/k8s) render, and hold what a reviewer would check.

Every overlay is rendered with ``kubectl kustomize`` and read back; what the manifests must carry
is derived from the code where it can be (the services' ports, schemas and settings classes, the
gateway's routing, the sandbox's credentials), so adding a required setting, a service or a route
without touching the manifests fails here.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr

from novitrac_gateway import routing
from novitrac_gateway.config import Settings as GatewaySettings
from novitrac_kit.config import ServiceSettings
from novitrac_kit.service import Service, discover
from novitrac_sandbox import config as sandbox_config

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(
    path.name for path in (K8S / "overlays").iterdir() if (path / "kustomization.yaml").is_file()
)
SERVICES = list(discover().values())
BY_NAME = {service.name: service for service in SERVICES}
SECRET_KINDS = ("infra", "keys", "providers")

# Whom each service must accept connections from inside the namespace, and nobody else: the
# gateway forwards to every service; voice-ai calls telephony's /internal/calls/{id}/transfer
# (VOICE_TELEPHONY_URL); in the sandbox overlay the sandbox's call engine opens the media stream.
CALLERS = {
    "gateway": None,  # anyone: the public entry
    "auth": {"gateway"},
    "telephony": {"gateway", "voice-ai"},
    "voice-ai": {"gateway"},
    "billing": {"gateway"},
    "notifications": {"gateway"},
}
SANDBOX_CALLERS = {"voice-ai": {"sandbox"}}

# After SIGTERM: uvicorn's graceful shutdown (novitrac_kit.process: timeout_graceful_shutdown=20),
# then the outbox relay's grace (10 s) and the bus's close timeout (10 s).
KIT_SHUTDOWN_SECONDS = 20 + 10 + 10

Obj = dict[str, Any]


# -- rendering ------------------------------------------------------------------------------------


@cache
def render(overlay: str) -> tuple[Obj, ...]:
    """Every object of an overlay, as ``kubectl kustomize`` renders it."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        message = "kubectl is not installed: the Kubernetes manifests cannot be rendered"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{done.stderr}"
    return tuple(obj for obj in yaml.safe_load_all(done.stdout) if obj)


def objects(overlay: str, kind: str) -> list[Obj]:
    return [obj for obj in render(overlay) if obj["kind"] == kind]


def named(overlay: str, kind: str, name: str) -> Obj:
    found = [obj for obj in objects(overlay, kind) if obj["metadata"]["name"] == name]
    assert len(found) == 1, f"overlays/{overlay}: expected one {kind} {name!r}, found {len(found)}"
    return found[0]


def maybe(overlay: str, kind: str, name: str) -> Obj | None:
    found = [obj for obj in objects(overlay, kind) if obj["metadata"]["name"] == name]
    return found[0] if found else None


def pod_templates(overlay: str) -> Iterator[tuple[str, Obj]]:
    """``(kind/name, pod spec)`` of every workload."""
    for obj in render(overlay):
        if obj["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]


def only_container(workload: Obj) -> Obj:
    containers: list[Obj] = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def image_name(image: str) -> str:
    """``registry/path/novitrac-auth:1.2@sha256:...`` -> ``novitrac-auth``."""
    last = image.split("@")[0].rsplit("/", 1)[-1]
    return last.split(":")[0]


def config_data(overlay: str) -> dict[str, str]:
    maps = [
        m
        for m in objects(overlay, "ConfigMap")
        if m["metadata"]["name"].startswith("novitrac-config")
    ]
    assert len(maps) == 1
    data: dict[str, str] = maps[0]["data"]
    return data


def environment(overlay: str, container: Obj) -> dict[str, tuple[Any, ...]]:
    """Each variable the container gets: ``("value", v)``, ``("secret", name, key, optional)``
    or ``("config", key, value)``; ``env`` wins over ``envFrom`` as in Kubernetes."""
    provided: dict[str, tuple[Any, ...]] = {}
    configs = {m["metadata"]["name"]: m.get("data", {}) for m in objects(overlay, "ConfigMap")}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, "variables come from the ConfigMap or one by one"
        data = configs[source["configMapRef"]["name"]]
        provided.update({key: ("config", key, value) for key, value in data.items()})
    for variable in container.get("env", []):
        name = variable["name"]
        if "value" in variable:
            provided[name] = ("value", variable["value"])
            continue
        ref = variable["valueFrom"]
        if "secretKeyRef" in ref:
            secret = ref["secretKeyRef"]
            provided[name] = (
                "secret",
                secret["name"],
                secret["key"],
                secret.get("optional", False),
            )
        else:
            key = ref["configMapKeyRef"]["key"]
            data = configs[ref["configMapKeyRef"]["name"]]
            provided[name] = ("config", key, data[key])
    return provided


def setting_value(overlay: str, service: str, variable: str) -> str:
    source = environment(overlay, only_container(named(overlay, "Deployment", service)))[variable]
    assert source[0] in ("value", "config"), f"{variable} is not a plain setting"
    value: str = source[-1]
    return value


def is_secret(settings: type[ServiceSettings], field: str) -> bool:
    annotation = settings.model_fields[field].annotation
    return annotation is SecretStr or SecretStr in get_args(annotation)


def secret_base(name: str) -> str:
    """A generated Secret's name without kustomize's hash suffix."""
    return re.sub(r"-[a-z0-9]{10}$", "", name)


def resolves_to(url: str, overlay: str, service: str, scheme: str = "http") -> bool:
    """Whether ``url`` names the Service ``service`` at the port it serves."""
    parts = urlsplit(url)
    ports = {port["port"] for port in named(overlay, "Service", service)["spec"]["ports"]}
    return parts.scheme == scheme and parts.hostname == service and parts.port in ports


cases = pytest.mark.parametrize(
    ("overlay", "service"),
    [(overlay, service) for overlay in OVERLAYS for service in SERVICES],
    ids=lambda value: value if isinstance(value, str) else value.name,
)


# -- every service --------------------------------------------------------------------------------


def test_both_overlays_exist() -> None:
    assert {"production", "sandbox"} <= set(OVERLAYS)


@cases
def test_each_service_runs_its_own_command_from_its_own_image(
    overlay: str, service: Service
) -> None:
    container = only_container(named(overlay, "Deployment", service.name))
    env = environment(overlay, container)

    assert container["args"] == ["run", service.name]
    assert image_name(container["image"]) == f"novitrac-{service.name}"
    assert [port["containerPort"] for port in container["ports"]] == [service.port]
    assert env["NOVITRAC_HTTP_PORT"] == ("value", str(service.port))
    assert env["NOVITRAC_HTTP_HOST"] == ("value", "0.0.0.0")


@cases
def test_each_service_has_a_service_on_its_port(overlay: str, service: Service) -> None:
    deployment = named(overlay, "Deployment", service.name)
    svc = named(overlay, "Service", service.name)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]

    assert svc["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "http", "port": service.port, "targetPort": "http"}]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


@cases
def test_probes_ask_the_kits_health_routes_on_the_services_port(
    overlay: str, service: Service
) -> None:
    container = only_container(named(overlay, "Deployment", service.name))
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}

    def probe(kind: str) -> tuple[str, int]:
        get = container[kind]["httpGet"]
        port = get["port"]
        return get["path"], ports[port] if isinstance(port, str) else port

    assert probe("readinessProbe") == ("/readyz", service.port)
    assert probe("livenessProbe") == ("/healthz", service.port)
    assert probe("startupProbe") == ("/healthz", service.port)


@cases
def test_every_required_setting_is_provided(overlay: str, service: Service) -> None:
    settings = service.settings
    env = environment(overlay, only_container(named(overlay, "Deployment", service.name)))
    required = {
        settings.env_name(field): field
        for field, info in settings.model_fields.items()
        if info.is_required()
    }

    missing = sorted(set(required) - set(env))
    optional_secrets = sorted(
        name
        for name, field in required.items()
        if name in env and env[name][0] == "secret" and env[name][3]
    )
    empty = sorted(
        name for name in required if name in env and env[name][0] != "secret" and not env[name][-1]
    )

    assert missing == [], f"{service.name} stops at start without {missing}"
    assert optional_secrets == [], f"{service.name} needs these, the Secret may not leave them out"
    assert empty == []


@cases
def test_every_secret_setting_comes_from_a_secret(overlay: str, service: Service) -> None:
    settings = service.settings
    env = environment(overlay, only_container(named(overlay, "Deployment", service.name)))

    for field in settings.model_fields:
        name = settings.env_name(field)
        if is_secret(settings, field) and name in env:
            assert env[name][0] == "secret", f"{name} is a SecretStr: it belongs in a Secret"


@cases
def test_containers_have_resources_and_no_api_token(overlay: str, service: Service) -> None:
    deployment = named(overlay, "Deployment", service.name)
    container = only_container(deployment)
    resources = container["resources"]

    assert {"cpu", "memory"} <= set(resources["requests"])
    assert {"cpu", "memory"} <= set(resources["limits"])
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    # Service links would add AUTH_PORT, BILLING_SERVICE_HOST, ... : variables in the services'
    # own prefixes, one setting named `port` away from being read as configuration.
    assert deployment["spec"]["template"]["spec"]["enableServiceLinks"] is False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_as_the_images_non_root_user_on_a_read_only_root(overlay: str) -> None:
    for where, pod in pod_templates(overlay):
        for container in pod["containers"] + pod.get("initContainers", []):
            context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
            assert context.get("runAsNonRoot") is True, where
            assert context.get("runAsUser") == 10001, f"{where}: the Dockerfile's user"
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            assert "privileged" not in context, where


@cases
def test_termination_leaves_the_kit_time_to_close(overlay: str, service: Service) -> None:
    pod = named(overlay, "Deployment", service.name)["spec"]["template"]["spec"]
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]

    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + KIT_SHUTDOWN_SECONDS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_voice_ai_has_time_to_drain_its_calls_before_it_is_killed(overlay: str) -> None:
    deployment = named(overlay, "Deployment", "voice-ai")
    pod = deployment["spec"]["template"]["spec"]
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    env = environment(overlay, only_container(deployment))
    assert "VOICE_DRAIN_TIMEOUT" in env
    assert "VOICE_MAX_CALLS" in env
    drain_timeout = float(setting_value(overlay, "voice-ai", "VOICE_DRAIN_TIMEOUT"))
    max_calls = int(setting_value(overlay, "voice-ai", "VOICE_MAX_CALLS"))
    assert max_calls >= 1

    grace = pod["terminationGracePeriodSeconds"]
    assert grace >= drain_timeout, "the kubelet would kill calls the drain is waiting for"
    # preStop, the drain, then the kit's shutdown with the voice-ai bridges' cut (10 s).
    assert grace >= int(pre_stop[1]) + drain_timeout + KIT_SHUTDOWN_SECONDS + 10


@cases
def test_each_service_has_a_disruption_budget(overlay: str, service: Service) -> None:
    budget = named(overlay, "PodDisruptionBudget", service.name)
    labels = named(overlay, "Deployment", service.name)["spec"]["template"]["metadata"]["labels"]

    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # maxUnavailable: a budget that demands every replica would block node drains.
    assert "maxUnavailable" in budget["spec"]


# -- migrations -----------------------------------------------------------------------------------


@cases
def test_a_service_with_a_schema_has_its_migration_job(overlay: str, service: Service) -> None:
    job = maybe(overlay, "Job", f"{service.name}-migrate")
    if service.database is None:
        assert job is None
        return
    assert job is not None, f"{service.name} owns schema {service.database.schema}"
    container = only_container(job)
    deployment = only_container(named(overlay, "Deployment", service.name))
    env = environment(overlay, container)

    assert container["args"] == ["migrate", service.name]
    assert container["image"] == deployment["image"]
    assert env["NOVITRAC_DATABASE_URL"] == environment(overlay, deployment)["NOVITRAC_DATABASE_URL"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    assert job["spec"].get("parallelism", 1) == 1, "one Alembic run at a time"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_migration_job_for_anything_else(overlay: str) -> None:
    jobs = {job["metadata"]["name"] for job in objects(overlay, "Job")}

    assert jobs == {f"{s.name}-migrate" for s in SERVICES if s.database is not None}


# -- exposure -------------------------------------------------------------------------------------


def backends(ingress: Obj) -> list[tuple[str, str, str]]:
    """``(path, pathType, service)`` of every route of an Ingress."""
    assert "defaultBackend" not in ingress["spec"]
    return [
        (path["path"], path["pathType"], path["backend"]["service"]["name"])
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_exposes_the_gateway_alone(overlay: str) -> None:
    ingress = named(overlay, "Ingress", "gateway")
    others = [i for i in objects(overlay, "Ingress") if i["metadata"]["name"] != "gateway"]

    assert {service for _, _, service in backends(ingress)} == {"gateway"}
    # The one exception, where Twilio's media WebSocket must reach voice-ai (the gateway does not
    # forward /media/*): components/media-stream, exactly one path and nothing else of voice-ai.
    for other in others:
        assert backends(other) == [("/media/stream", "Exact", "voice-ai")]
    assert all(routing.service_for(path) is None for path in ("/media/stream", "/internal/x"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_keeps_websockets_open_as_long_as_the_gateway_does(overlay: str) -> None:
    annotations = named(overlay, "Ingress", "gateway")["metadata"]["annotations"]
    lifetime = GatewaySettings.model_fields["ws_max_lifetime"].default

    for name in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{name}"]) > lifetime


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_addresses_services_call_each_other_at_are_their_services(overlay: str) -> None:
    gateway_env = environment(overlay, only_container(named(overlay, "Deployment", "gateway")))
    for name, url in GatewaySettings.model_construct().upstream_urls().items():
        variable = f"GATEWAY_{name.upper().replace('-', '_')}_URL"
        assert variable in gateway_env, f"the gateway would call {url}"
        assert resolves_to(gateway_env[variable][-1], overlay, name), variable

    assert resolves_to(
        setting_value(overlay, "voice-ai", "VOICE_TELEPHONY_URL"), overlay, "telephony"
    )


# -- network policies -----------------------------------------------------------------------------


def matches(selector: Obj, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are evaluated here"
    wanted: dict[str, str] = selector.get("matchLabels", {})
    return wanted.items() <= labels.items()


def admitted(overlay: str, target: str, port: int) -> tuple[set[str], bool]:
    """Which of the overlay's workloads may connect to ``target`` on ``port``, and whether
    anything outside the namespace may (an empty ``from``, a namespace selector, an ip block)."""
    labels = named(overlay, "Deployment", target)["spec"]["template"]["metadata"]["labels"]
    workloads = {
        obj["metadata"]["name"]: obj["spec"]["template"]["metadata"]["labels"]
        for obj in render(overlay)
        if obj["kind"] in ("Deployment", "Job")
    }
    sources: set[str] = set()
    outside = False
    for policy in objects(overlay, "NetworkPolicy"):
        spec = policy["spec"]
        if "Ingress" not in spec["policyTypes"] or not matches(spec["podSelector"], labels):
            continue
        for rule in spec.get("ingress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            if ports and port not in ports:
                continue
            peers = rule.get("from")
            if not peers:
                outside = True
                sources |= set(workloads)
                continue
            for peer in peers:
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    sources |= {
                        n for n, lab in workloads.items() if matches(peer["podSelector"], lab)
                    }
                else:
                    outside = True
    return sources, outside


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nothing_is_reachable_unless_a_policy_says_so(overlay: str) -> None:
    deny = [
        p
        for p in objects(overlay, "NetworkPolicy")
        if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")
    ]

    assert deny
    assert deny[0]["spec"]["policyTypes"] == ["Ingress"]


@cases
def test_services_accept_only_their_callers(overlay: str, service: Service) -> None:
    sources, outside = admitted(overlay, service.name, service.port)
    expected = CALLERS[service.name]

    if expected is None:
        assert outside, "the gateway is the public entry"
        return
    if overlay == "sandbox":
        expected = expected | SANDBOX_CALLERS.get(service.name, set())
    assert sources == expected
    if service.name == "voice-ai" and overlay == "production":
        # components/media-stream: the ingress controller, for /media/stream (checked above).
        assert outside
    else:
        assert not outside, f"{service.name} must not be reachable from outside the namespace"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_auths_internal_routes_are_reached_through_the_gateways_code_alone(overlay: str) -> None:
    """Only the gateway may connect to auth (whose ``/internal/*`` also demand the internal
    token), and the gateway's routing forwards none of them, so everyone else fetches the JWKS
    through it."""
    sources, outside = admitted(overlay, "auth", BY_NAME["auth"].port)

    assert sources == {"gateway"}
    assert not outside
    assert routing.service_for("/.well-known/jwks.json") == "auth"
    assert routing.is_public("GET", "/.well-known/jwks.json")
    assert routing.service_for("/internal/signing-keys/rotate") is None
    assert routing.service_for("/internal/api-keys/exchange") is None
    for service in SERVICES:
        url = setting_value(overlay, service.name, "NOVITRAC_AUTH_JWKS_URL")
        via = "auth" if service.name == "gateway" else "gateway"
        assert resolves_to(url, overlay, via), service.name
        assert urlsplit(url).path == "/.well-known/jwks.json"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_reads_the_same_internal_token(overlay: str) -> None:
    """``/internal/*`` answer only the internal token: callers and callees hold the same one."""
    sources = {
        service.name: environment(
            overlay, only_container(named(overlay, "Deployment", service.name))
        ).get("NOVITRAC_INTERNAL_TOKEN")
        for service in SERVICES
    }

    assert set(sources.values()) == {
        ("secret", "novitrac-keys", "NOVITRAC_INTERNAL_TOKEN", False)
    }, sources
    # The migration Jobs call no service.
    for name, pod in pod_templates(overlay):
        if name.startswith("Job/"):
            [container] = pod["containers"]
            assert "NOVITRAC_INTERNAL_TOKEN" not in environment(overlay, container), name


# -- the config and the Secrets -------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_config_holds_only_known_settings_and_no_secret(overlay: str) -> None:
    known: set[str] = {"MEDIA_STREAM_URL"}
    secrets: set[str] = set()
    for service in SERVICES:
        for field in service.settings.model_fields:
            name = service.settings.env_name(field)
            known.add(name)
            if is_secret(service.settings, field):
                secrets.add(name)

    data = config_data(overlay)

    assert sorted(set(data) - known) == [], "a misspelt setting is silently ignored"
    assert sorted(set(data) & secrets) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_telephony_and_voice_ai_share_the_stream_url_and_secrets(overlay: str) -> None:
    telephony = environment(overlay, only_container(named(overlay, "Deployment", "telephony")))
    voice = environment(overlay, only_container(named(overlay, "Deployment", "voice-ai")))

    # voice-ai checks Twilio's handshake signature against the URL telephony wrote in the TwiML.
    assert telephony["TELEPHONY_MEDIA_STREAM_URL"] == voice["VOICE_MEDIA_STREAM_URL"]
    assert telephony["TELEPHONY_STREAM_TOKEN_SECRET"] == voice["VOICE_STREAM_TOKEN_SECRET"]
    assert telephony["TELEPHONY_TWILIO_AUTH_TOKEN"] == voice["VOICE_TWILIO_AUTH_TOKEN"]


def secret_references(overlay: str) -> set[tuple[str, str, bool]]:
    found: set[tuple[str, str, bool]] = set()
    for _, pod in pod_templates(overlay):
        for container in pod["containers"]:
            for source in environment(overlay, container).values():
                if source[0] == "secret":
                    found.add((secret_base(source[1]), source[2], source[3]))
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_the_documented_ones(overlay: str) -> None:
    readme = (K8S / "README.md").read_text()
    rendered = {secret_base(s["metadata"]["name"]): s for s in objects(overlay, "Secret")}

    for name, key, optional in secret_references(overlay):
        assert name in {f"novitrac-{kind}" for kind in SECRET_KINDS}
        assert f"`{name}`" in readme, f"document {name}"
        assert f"`{key}`" in readme, f"document {name}/{key}"
        if name in rendered and not optional:
            assert key in rendered[name].get("data", {}), f"{name} lacks {key}"


def test_production_commits_no_secret() -> None:
    assert objects("production", "Secret") == []


# -- production -----------------------------------------------------------------------------------


def test_production_runs_at_least_two_of_everything() -> None:
    scaled = {
        h["spec"]["scaleTargetRef"]["name"]: h
        for h in objects("production", "HorizontalPodAutoscaler")
    }

    for deployment in objects("production", "Deployment"):
        name = deployment["metadata"]["name"]
        if name in scaled:
            assert scaled[name]["spec"]["minReplicas"] >= 2, name
            assert "replicas" not in deployment["spec"], f"{name}: the autoscaler owns the count"
        else:
            assert deployment["spec"]["replicas"] >= 2, name


def test_production_scales_the_gateway_and_voice_ai_on_cpu() -> None:
    autoscalers = {
        h["metadata"]["name"]: h for h in objects("production", "HorizontalPodAutoscaler")
    }

    assert set(autoscalers) == {"gateway", "voice-ai"}
    for name, autoscaler in autoscalers.items():
        assert autoscaler["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        (metric,) = autoscaler["spec"]["metrics"]
        assert metric["type"] == "Resource"
        assert metric["resource"]["name"] == "cpu"
        assert autoscaler["spec"]["maxReplicas"] > autoscaler["spec"]["minReplicas"]


def test_production_pins_every_image() -> None:
    for where, pod in pod_templates("production"):
        for container in pod["containers"]:
            image = container["image"]
            tag = image.split("@")[0].rsplit("/", 1)[-1].partition(":")[2]
            assert "@sha256:" in image or tag not in ("", "latest"), f"{where}: {image}"
            assert "/" in image, f"{where}: {image} names no registry"


def test_production_aims_at_the_real_providers_and_its_public_address() -> None:
    data = config_data("production")

    assert not [key for key, value in data.items() if "sandbox" in value or "127.0.0.1" in value]
    # The settings' defaults are the real Twilio, ElevenLabs and Stripe.
    assert not [key for key in data if key.endswith("_API_BASE")]
    assert data["TELEPHONY_PUBLIC_URL"].startswith("https://")
    assert data["MEDIA_STREAM_URL"].startswith("wss://")  # Twilio connects only over TLS
    assert data["NOVITRAC_ENVIRONMENT"] == "production"
    host = urlsplit(data["TELEPHONY_PUBLIC_URL"]).hostname
    for ingress in objects("production", "Ingress"):
        # Twilio's signatures cover the URL it called: the Ingress host is the public URL's.
        assert [rule["host"] for rule in ingress["spec"]["rules"]] == [host]
        assert ingress["spec"]["tls"][0]["hosts"] == [host]
    assert urlsplit(data["MEDIA_STREAM_URL"]).hostname == host


# -- sandbox --------------------------------------------------------------------------------------


def test_the_sandbox_runs_beside_the_services() -> None:
    deployment = named("sandbox", "Deployment", "sandbox")
    container = only_container(deployment)
    ports = {
        port["name"]: port["port"]
        for port in named("sandbox", "Service", "sandbox")["spec"]["ports"]
    }
    defaults = sandbox_config.SandboxConfig()

    assert container["args"][0] == "sandbox"
    assert "--host=0.0.0.0" in container["args"]
    assert image_name(container["image"]) == "novitrac-sandbox"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert ports == {
        "control": defaults.control_port,
        "twilio": defaults.twilio_port,
        "elevenlabs": defaults.elevenlabs_port,
        "stripe": defaults.stripe_port,
        "smtp": defaults.smtp_port,
    }
    webhooks = [arg.partition("=")[2] for arg in container["args"] if "webhook-url" in arg]
    assert len(webhooks) == 2
    assert all(resolves_to(url, "sandbox", "gateway") for url in webhooks)


def test_the_sandbox_overlay_aims_every_provider_at_the_sandbox() -> None:
    data = config_data("sandbox")
    defaults = sandbox_config.SandboxConfig()

    assert data["TELEPHONY_TWILIO_API_BASE"] == f"http://sandbox:{defaults.twilio_port}"
    assert data["VOICE_ELEVENLABS_API_BASE"] == f"http://sandbox:{defaults.elevenlabs_port}"
    assert data["BILLING_STRIPE_API_BASE"] == f"http://sandbox:{defaults.stripe_port}"
    assert data["NOTIFICATIONS_SMTP_HOST"] == "sandbox"
    assert data["NOTIFICATIONS_SMTP_PORT"] == str(defaults.smtp_port)
    assert resolves_to(data["TELEPHONY_PUBLIC_URL"], "sandbox", "gateway")
    assert resolves_to(data["MEDIA_STREAM_URL"], "sandbox", "voice-ai", scheme="ws")


def test_the_sandbox_overlay_uses_the_sandboxs_public_credentials_only() -> None:
    (secret,) = objects("sandbox", "Secret")
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}

    assert secret_base(secret["metadata"]["name"]) == "novitrac-providers"
    assert values == {
        "TWILIO_ACCOUNT_SID": sandbox_config.SANDBOX_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": sandbox_config.SANDBOX_AUTH_TOKEN,
        "ELEVENLABS_API_KEYS": sandbox_config.SANDBOX_ELEVENLABS_API_KEY,
        "ELEVENLABS_WEBHOOK_SECRET": sandbox_config.SANDBOX_ELEVENLABS_WEBHOOK_SECRET,
        "STRIPE_SECRET_KEY": sandbox_config.SANDBOX_STRIPE_SECRET_KEY,
        "STRIPE_WEBHOOK_SECRET": sandbox_config.SANDBOX_STRIPE_WEBHOOK_SECRET,
    }


def test_the_sandbox_overlay_runs_one_of_everything() -> None:
    assert objects("sandbox", "HorizontalPodAutoscaler") == []
    assert {
        d["metadata"]["name"]: d["spec"]["replicas"] for d in objects("sandbox", "Deployment")
    } == dict.fromkeys([*BY_NAME, "sandbox"], 1)


# -- schemas --------------------------------------------------------------------------------------

KUBERNETES_VERSION = "1.30.0"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_for_kubernetes(overlay: str) -> None:
    """Against the Kubernetes OpenAPI schemas (strict: an unknown field is an error), offline,
    with the schemas the kubernetes-validate package ships."""
    validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (dev dependency)"
    )
    for obj in render(overlay):
        try:
            validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except validate.ValidationError as error:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {error.message}")

# One image per workspace member, built from the repository root:
#   docker build --build-arg PACKAGE=novitrac-billing -t novitrac-billing .
# The image holds only that member's dependency closure, installed from uv.lock, and runs
# `novitrac` (e.g. `novitrac run billing`, `novitrac migrate billing`, `novitrac sandbox`).
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.8 /uv /usr/local/bin/uv
ENV UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 UV_PYTHON_DOWNLOADS=never
ARG PACKAGE
WORKDIR /app

# Dependencies first (cached until uv.lock or a member's pyproject.toml changes).
COPY pyproject.toml uv.lock ./
COPY libs/contracts/pyproject.toml libs/contracts/
COPY libs/kit/pyproject.toml libs/kit/
COPY services/gateway/pyproject.toml services/gateway/
COPY services/auth/pyproject.toml services/auth/
COPY services/telephony/pyproject.toml services/telephony/
COPY services/voice-ai/pyproject.toml services/voice-ai/
COPY services/billing/pyproject.toml services/billing/
COPY services/notifications/pyproject.toml services/notifications/
COPY sandbox/pyproject.toml sandbox/
RUN uv sync --frozen --no-dev --no-install-workspace --package "${PACKAGE}"

COPY libs libs
COPY services services
COPY sandbox sandbox
RUN uv sync --frozen --no-dev --no-editable --package "${PACKAGE}"

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home novitrac
COPY --from=build /app/.venv /app/.venv
# The web dashboard's static files, which the gateway serves at / (it finds /app/web above its
# installed package; GATEWAY_DASHBOARD_DIR overrides). A few hundred kilobytes in every image.
COPY web /app/web
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 NOVITRAC_HTTP_HOST=0.0.0.0
USER 10001
ENTRYPOINT ["novitrac"]

# The image of each service, one stage per service on a shared base. Build from the repository root (the shared
# package lives in common/), naming the service twice, as its folder and as its stage:
#   docker build --build-arg SERVICE=model --target model .
# The model stage comes last: a builder without BuildKit builds every stage before the target, and only model's
# stage runs something (train.py) that needs its own service's files.
FROM python:3.13-slim-trixie AS base
ARG SERVICE

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN test -n "$SERVICE" || { echo "build with --build-arg SERVICE=features|model|metric|plot and the same --target"; exit 1; }

COPY ${SERVICE}/requirements.txt .
RUN pip install -r requirements.txt

COPY common /opt/common
RUN pip install --no-deps /opt/common

COPY ${SERVICE}/src ./src

ENV LOGS_DIR=/app/logs \
    HEALTH_FILE=/tmp/healthy \
    LISTEN_ADDRESS=0.0.0.0
# Prometheus /metrics when METRICS_PORT is set (docker-compose.yml: 9100)
EXPOSE 9100
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "pipeline.health", "30"]


FROM base AS features
# This service writes nothing to ./logs, so it runs as an unprivileged user.
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin app
USER 10001
CMD ["python", "src/features.py"]


# No USER: the entrypoint starts as root only to find who owns the ./logs bind mount, then runs the service with
# that UID (10001 if root owns it), so the service never runs as root and its files belong to the folder's owner.
FROM base AS logs-owner
COPY common/docker/run-as-logs-owner /usr/local/bin/
ENTRYPOINT ["run-as-logs-owner"]


FROM logs-owner AS metric
CMD ["python", "src/metric.py"]


FROM logs-owner AS plot
# the page (WEB_PORT, 8000 by default), beside /metrics
EXPOSE 8000
CMD ["python", "src/plot.py"]


# model writes the counts of its inputs to ./logs/inputs, so, as metric and plot, it runs as the owner of ./logs.
FROM logs-owner AS model
# The default estimator is trained at build time, reproducibly, on the dataset scikit-learn bundles; its profile
# (model.profile.json, the reference of the input drift) is saved beside it.
RUN python src/train.py
CMD ["python", "src/model.py"]

# syntax=docker/dockerfile:1
# slaprobe: build a virtualenv holding slaprobe and its runtime dependencies only (no pip,
# no setuptools, no build tools), then copy it onto a fresh slim Python as a non-root user.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
RUN python -m venv --without-pip /opt/slaprobe
COPY pyproject.toml README.md ./
COPY slaprobe/ slaprobe/
COPY exporter/ exporter/
COPY probes/ probes/
COPY alerts/ alerts/
COPY dashboards/ dashboards/
COPY demo/ demo/
# The build's own pip installs into the venv; the venv gets no pip of its own.
RUN python -m pip --python /opt/slaprobe/bin/python install --no-compile . \
    && /opt/slaprobe/bin/python -m compileall -q /opt/slaprobe/lib \
    && /opt/slaprobe/bin/slaprobe --version

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="slaprobe" \
      org.opencontainers.image.description="SLA dial tests, log scrapers, and the rules, routing and dashboards that go with them" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/slaprobe/slaprobe" \
      org.opencontainers.image.documentation="https://github.com/slaprobe/slaprobe#readme"
ENV PATH=/opt/slaprobe/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN useradd --uid 1000 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin slaprobe \
    && install -d -o 1000 -g 1000 -m 0750 /var/lib/slaprobe \
    && install -d -m 0755 /etc/slaprobe
COPY --from=build /opt/slaprobe /opt/slaprobe
USER 1000:1000
WORKDIR /var/lib/slaprobe
EXPOSE 9799
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9799/-/healthy', timeout=2).status != 200)"]
ENTRYPOINT ["slaprobe"]
CMD ["serve", "--config", "/etc/slaprobe/slaprobe.yaml", "--listen", "0.0.0.0:9799", "--state-dir", "/var/lib/slaprobe"]

# syntax=docker/dockerfile:1
# Build a wheel in one stage, install only it and its runtime dependencies in the next.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY slaprobe/ slaprobe/
COPY exporter/ exporter/
COPY probes/ probes/
COPY alerts/ alerts/
COPY dashboards/ dashboards/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="slaprobe" \
      org.opencontainers.image.description="SLA dial tests, log scrapers, and the rules, routing and dashboards that go with them" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/slaprobe/slaprobe"
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --uid 1000 --no-create-home --shell /usr/sbin/nologin slaprobe
USER 1000:1000
EXPOSE 9799
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:9799/-/healthy', timeout=2).status != 200)"]
ENTRYPOINT ["slaprobe"]
CMD ["serve", "--config", "/etc/slaprobe/slaprobe.yaml", "--listen", "0.0.0.0:9799", "--state-dir", "/var/lib/slaprobe"]

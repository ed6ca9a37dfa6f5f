# busgen-fed coordinator image: SuperLink (`busgen-server start`; Flower runs the ServerApp in
# this container through its subprocess isolation), job submission (`busgen-server run`) and
# the release catalog (`busgen-server serve`). Used by deploy/coordinator/compose.yaml.
# Build from the repository root:
#   docker build -f deploy/docker/coordinator.Dockerfile -t busgen-coordinator:0.1.0 .
# Pin the base image by digest for production (docker buildx imagetools inspect IMAGE).

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/busgen/venv
# Aggregation needs torch, not a GPU: the CPU build from PyTorch's CPU index.
RUN /opt/busgen/venv/bin/pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
WORKDIR /opt/busgen/app
COPY pyproject.toml README.md ./
COPY common ./common
COPY server ./server
COPY configs ./configs
# A regular install: the profiles (configs/) and the Flower app metadata ship inside the package.
RUN /opt/busgen/venv/bin/pip install ".[coordinator]"

FROM python:3.11.11-slim-bookworm
RUN groupadd --system --gid 10001 busgen \
 && useradd --system --uid 10001 --gid busgen --home-dir /state --shell /usr/sbin/nologin busgen \
 && mkdir -p /state /catalog /base \
 && chown busgen:busgen /state /catalog /base
COPY --from=build /opt/busgen /opt/busgen
ENV PATH=/opt/busgen/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FLWR_TELEMETRY_ENABLED=0 \
    FLWR_DISABLE_UPDATE_CHECK=1 \
    FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1
USER busgen
WORKDIR /state
VOLUME ["/state", "/catalog"]
# The SuperLink answers GET /health on its loopback port (TLS, consortium CA).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import ssl, sys, httpx; ctx = ssl.create_default_context(cafile='/state/pki/ca.pem'); sys.exit(httpx.get('https://localhost:9093/health', verify=ctx, timeout=5).status_code != 200)"]
ENTRYPOINT ["busgen-server"]
CMD ["--help"]

# busgen-fed site image, NVIDIA GPU (CUDA).
# Build from the repository root:
#   docker build -f deploy/docker/site-cuda.Dockerfile -t busgen-site:0.1.0-cuda .
# Run (outbound connection only; no port is published):
#   docker run -d --name busgen-site --restart unless-stopped --gpus all \
#     -v /srv/busgen/site:/var/lib/busgen/site -e BUSGEN_SUPERLINK=fl.consortium.example:443 \
#     -e HTTPS_PROXY=http://proxy.hospital.local:3128 \
#     busgen-site:0.1.0-cuda join --superlink fl.consortium.example:443 \
#     --ca /var/lib/busgen/site/keys/ca.pem --workdir /var/lib/busgen/site
# Pin the base image by digest for production (docker buildx imagetools inspect IMAGE).

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/busgen/venv
# The default PyPI wheel of torch for Linux bundles the CUDA 12 runtime libraries; the host
# needs only the NVIDIA driver and the NVIDIA Container Toolkit (docker run --gpus all).
RUN /opt/busgen/venv/bin/pip install "torch==2.13.0"
WORKDIR /opt/busgen/app
COPY pyproject.toml README.md ./
COPY client ./client
COPY common ./common
COPY configs ./configs
# A regular install: the profiles (configs/) and the Flower app metadata ship inside the package.
RUN /opt/busgen/venv/bin/pip install ".[site]"

FROM python:3.11.11-slim-bookworm
RUN groupadd --system --gid 10001 busgen \
 && useradd --system --uid 10001 --gid busgen --home-dir /var/lib/busgen --shell /usr/sbin/nologin busgen \
 && mkdir -p /var/lib/busgen/site \
 && chown -R busgen:busgen /var/lib/busgen
COPY --from=build /opt/busgen /opt/busgen
ENV PATH=/opt/busgen/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FLWR_TELEMETRY_ENABLED=0 \
    FLWR_DISABLE_UPDATE_CHECK=1 \
    FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER busgen
WORKDIR /var/lib/busgen
VOLUME ["/var/lib/busgen/site"]
# Healthy = every doctor check passes (SuperLink reachable, certificates valid, clock in sync,
# logs intact). The SuperLink address comes from BUSGEN_SUPERLINK.
HEALTHCHECK --interval=10m --timeout=90s --start-period=2m --retries=2 \
  CMD ["busgen-site", "doctor", "--workdir", "/var/lib/busgen/site"]
ENTRYPOINT ["busgen-site"]
CMD ["--help"]

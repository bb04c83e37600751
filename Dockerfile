# genrec image: python:3.11-slim, CPU torch==2.13.0, non-root, health-checked; API and jobs.
#   docker build -t genrec:0.1.0 .                                    # bundle mounted at run time
#   docker build -t genrec:0.1.0 --build-arg BUNDLE=artifacts/bundles/ml-100k .   # or baked in
#   docker run -p 8000:8000 -v genrec-bundles:/bundles genrec:0.1.0   # serves /bundles/current
# The install step is `make install`, the same command CI runs (`make test` → install).
# deploy/compose.yaml and deploy/k8s/ run this image; tests/deploy/ checks all three.

FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md Makefile ./
COPY tokenizer tokenizer
COPY model model
COPY service service
COPY pipeline pipeline
RUN make install VENV=/opt/venv EXTRAS=onnx EDITABLE= TORCH_INDEX=https://download.pytorch.org/whl/cpu \
    && /opt/venv/bin/pip uninstall -y pip \
    && rm /opt/venv/.installed

# The final stage gets the venv only: no compiler, no make, no pip.
FROM python:3.11-slim
ARG BUNDLE=
RUN useradd --create-home --uid 10001 genrec && mkdir -p /bundles /data && chown genrec /bundles /data
COPY --from=build /opt/venv /opt/venv
# An optional bundle baked in at build time (--build-arg BUNDLE=path/in/context); otherwise
# mount a bundle store at /bundles (ROOT/versions/… + ROOT/current, what retrain publishes).
COPY --chown=genrec ${BUNDLE:-Dockerfile} /tmp/baked/
RUN if [ -f /tmp/baked/manifest.json ]; then mv /tmp/baked /bundles/current; else rm -rf /tmp/baked; fi
ENV PATH=/opt/venv/bin:$PATH \
    GENREC_BUNDLE=/bundles/current \
    GENREC_STORE=/bundles \
    GENREC_DATA_DIR=/data \
    GENREC_REDIS_DIR=/data/redis \
    OMP_WAIT_POLICY=PASSIVE \
    PYTHONUNBUFFERED=1
USER genrec
WORKDIR /home/genrec
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["genrec", "serve", "--host", "0.0.0.0", "--port", "8000"]

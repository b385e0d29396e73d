# liveroom-streams worker image: slim, non-root, health-checked.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY loadtest ./loadtest
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 liveroom
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER liveroom
WORKDIR /home/liveroom
ENV LIVEROOM_METRICS_PORT=9464 LIVEROOM_DATA_DIR=/home/liveroom/data PYTHONUNBUFFERED=1
EXPOSE 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['LIVEROOM_METRICS_PORT']}/healthz\", timeout=2)"]
ENTRYPOINT ["liveroom"]
CMD ["worker"]

# doctoctoc-bot: `docker build -t doctoctoc .` then
#   docker run -v $PWD/config.yaml:/config/config.yaml:ro -v doctoctoc-data:/data doctoctoc
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DOCTOCTOC_CONFIG=/config/config.yaml

RUN useradd --create-home --uid 10001 doctoctoc
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY classifiers ./classifiers
COPY digests ./digests
RUN pip install . && mkdir -p /data /config && chown doctoctoc /data

# config.yaml is mounted read-only at /config; the SQLite database and the outbox live
# in /data (point database.url at sqlite:////data/doctoctoc.db, outbox.dir at /data/outbox).
VOLUME ["/data", "/config"]
USER doctoctoc
WORKDIR /data
ENTRYPOINT ["doctoctoc"]
CMD ["run"]

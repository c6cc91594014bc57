# drip: one image for every role (migrate, worker, web); the command picks the role.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed, unprivileged user: drip needs no root for anything it does.
RUN groupadd --system --gid 10001 drip \
    && useradd --system --uid 10001 --gid drip --create-home --home-dir /home/drip drip

# The dependencies in their own layer, pinned by constraints.txt: a change to drip's code
# reuses this layer, and two builds of one commit install the same versions.
WORKDIR /src
COPY constraints.txt ./
RUN pip install --requirement constraints.txt

# Only what the wheel needs; templates, lessons and examples ship inside it as package data.
COPY pyproject.toml README.md LICENSE ./
COPY drip/ drip/
COPY templates/ templates/
COPY lessons/ lessons/
COPY examples/ examples/
RUN pip install --no-deps --constraint constraints.txt ".[postgres]" \
    && pip check \
    && rm -rf /src \
    && drip --version

# The working folder is the drip user's home: a ./lessons or ./templates mounted here (or
# DRIP_LESSONS_DIR / DRIP_TEMPLATES_DIR) overrides the packaged ones, with a warning.
WORKDIR /home/drip
USER drip:drip

# `drip healthcheck` reads the heartbeat the worker writes after each pass (compose uses it
# for the worker service; the web service has /healthz).
ENTRYPOINT ["drip"]
CMD ["--help"]

# vidpipe image: the project, its Airflow 3 / Beam / TensorFlow dependencies and ffmpeg.
# Build: docker build -t vidpipe:latest .   (docker compose build does the same)
# For a GPU build: --build-arg TENSORFLOW_EXTRA=and-cuda (see docker-compose.gpu.yaml).
FROM python:3.11-slim

ARG TENSORFLOW_EXTRA=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/vidpipe/dags \
    VIDPIPE_HOME=/opt/vidpipe-data

RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg curl \
    && rm -rf /var/lib/apt/lists/*

# Airflow's conventional uid 50000 in group 0; named volumes mounted on these folders inherit the ownership.
RUN useradd --uid 50000 --gid 0 --no-create-home --home-dir /opt/airflow airflow \
    && mkdir -p /opt/airflow/logs /opt/airflow/auth /opt/vidpipe-data /opt/vidpipe \
    && chown -R 50000:0 /opt/airflow /opt/vidpipe-data

WORKDIR /opt/vidpipe

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml or constraints.txt change.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/dependencies.txt \
    && pip install -c constraints.txt -r /tmp/dependencies.txt \
    && if [ -n "$TENSORFLOW_EXTRA" ]; then pip install -c constraints.txt "tensorflow[$TENSORFLOW_EXTRA]"; fi \
    && rm /tmp/dependencies.txt

COPY README.md ./
COPY sql ./sql
COPY vidpipe ./vidpipe
COPY beam_pipelines ./beam_pipelines
COPY models ./models
COPY dags ./dags
RUN pip install -c constraints.txt -e . \
    && ffmpeg -version >/dev/null \
    && python -c "import airflow, asyncpg, vidpipe.catalog"

USER airflow
CMD ["airflow", "version"]

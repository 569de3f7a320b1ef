# inferq: one image for workers and the results API.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY inferq ./inferq
COPY producer ./producer
COPY worker ./worker
COPY results_api ./results_api
COPY schemas ./schemas
# [models] lets the image build the demo models; drop it for images that only serve your own.
RUN pip install '.[models]' && useradd --create-home --uid 10001 inferq \
    && mkdir -p /models /data && chown inferq /models /data

USER inferq
ENV INFERQ_MODEL_REPOSITORY=/models INFERQ_STORE=sqlite:////data/results.db
ENTRYPOINT ["inferq"]
CMD ["--help"]

# ExperimentOS app image: the Streamlit app (and, with another command, the API or the CLI:
# `python -m core.cli migrate` brings the database to the latest schema).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The PDF reports draw emoji with Debian's Noto Color Emoji (core/reports/pdf.py).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-noto-color-emoji \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, so code changes reuse this cached layer.
COPY requirements.txt ./
RUN pip install -r requirements.txt

RUN useradd --create-home --uid 1000 app
COPY --chown=app:app . .
RUN mkdir -p /app/data && chown app:app /app/data
USER app

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"

# The app never changes the schema: `python -m core.cli migrate` does, once per release (the
# compose `migrate` service), and the app refuses to start on an unmigrated database, naming it.
CMD ["streamlit", "run", "Home.py", "--server.address=0.0.0.0", "--server.port=8501"]

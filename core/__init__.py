"""ExperimentOS core: the product's brain, importable without Streamlit, FastAPI or Airflow."""

"""The sidecar API: a FastAPI app over the same core services the pages use."""

"""The FastAPI service: ``uvicorn api.main:app``."""

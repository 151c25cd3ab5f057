"""HTTP service for spacy-senti pipelines and ONNX exports (FastAPI + uvicorn)."""

from .app import create_app
from .schemas import ServeSettings

__all__ = ["ServeSettings", "create_app"]

"""Monitoring: drift between reference and current data (``spacy-senti drift``)."""

from ..errors import InputError
from .drift import DriftResult, categorical_psi, compute_drift, psi
from .inputs import predict, read_texts
from .report import write_report

__all__ = ["DriftResult", "InputError", "categorical_psi", "compute_drift", "predict", "psi",
           "read_texts", "write_report"]

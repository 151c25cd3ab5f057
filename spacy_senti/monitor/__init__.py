"""Monitoring: drift between reference and current data (``spacy-senti drift``)."""

from .drift import DriftResult, categorical_psi, compute_drift, psi
from .inputs import LoopInputError, predict, read_texts
from .report import write_report

__all__ = ["DriftResult", "LoopInputError", "categorical_psi", "compute_drift", "predict", "psi",
           "read_texts", "write_report"]

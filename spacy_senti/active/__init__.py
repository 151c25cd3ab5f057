"""Active learning: pick unlabelled texts worth annotating (``spacy-senti select``)."""

from .export import write_label_studio, write_prodigy
from .select import STRATEGIES, k_center_greedy, select, select_texts, uncertainty

__all__ = ["STRATEGIES", "k_center_greedy", "select", "select_texts", "uncertainty",
           "write_label_studio", "write_prodigy"]

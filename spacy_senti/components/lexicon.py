"""``senti_lexicon``: VADER-style rule scoring over spaCy tokens, with per-token contributions.

Sets ``doc._.lexicon_score`` (compound in [-1, 1]), ``doc._.lexicon_polarity`` ({"neg", "neu",
"pos", "compound"} as VADER's ``polarity_scores``), ``token._.valence`` (the contribution of
each lexicon word after the rules, on its first token; None for the other tokens) and, with an
emotion lexicon, ``doc._.lexicon_emotions`` ({emotion: summed score}). Needs no training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import srsly
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.pipeline import Pipe
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import SimpleFrozenList, ensure_path, filter_spans, registry
from spacy.vocab import Vocab

from ..extensions import register_lexicon_extensions
from ..lexicon.items import (
    Items,
    build_items,
    dependency_negations,
    sentence_groups,
    token_view,
)
from ..lexicon.rules import (
    RuleSet,
    allcap_differential,
    group_valences,
    polarity,
    reweight_contrast,
)
from ..lexicon.user import (
    domain_lexicon,
    normalize_term,
    read_emotion_tsv,
    read_valence_tsvs,
)
from ..lexicon.vader import emoji_lexicon, vader_lexicon
from ..lexicon.wordlists import CONCESSIVE_WORDS, CONTRAST_WORDS

EMOTION_EXTENSION = "lexicon_emotions"
USER_FILE = "user_lexicon.json"
EMOTION_FILE = "emotion_lexicon.json"
NEUTRAL_BAND = 0.05  # VADER's usual |compound| < 0.05 -> neutral


@Language.factory(
    "senti_lexicon",
    assigns=["doc._.lexicon_score", "doc._.lexicon_polarity", "token._.valence"],
    default_config={
        "lexicon_paths": [],
        "domain": None,
        "emotion_lexicon_path": None,
        "use_emoji": True,
        "dep_negation": True,
        "contrast_words": list(CONTRAST_WORDS),
        "concessive_words": list(CONCESSIVE_WORDS),
        "scorer": {"@scorers": "spacy_senti.lexicon_scorer.v1"},
    },
    default_score_weights={"lexicon_acc": None},
)
def make_senti_lexicon(
    nlp: Language,
    name: str,
    lexicon_paths: list[str],
    domain: str | None,
    emotion_lexicon_path: str | None,
    use_emoji: bool,
    dep_negation: bool,
    contrast_words: list[str],
    concessive_words: list[str],
    scorer: Callable | None,
) -> SentiLexicon:
    """Create a VADER-style lexicon scorer.

    lexicon_paths: user lexicons, ``term<TAB>valence`` (-4..+4) per line; later files override
        earlier ones and VADER; multi-word terms are matched as phrases; valence 0 removes a
        term. Read on first use and saved with the pipeline (the files are not needed after).
    domain: shipped domain additions applied before the user files, e.g. ``"finance"``.
    emotion_lexicon_path: optional ``term<TAB>emotion[<TAB>score]`` file; fills
        ``doc._.lexicon_emotions``. Saved with the pipeline.
    use_emoji: score emoji through the descriptions of VADER's emoji lexicon.
    dep_negation: when the Doc has a dependency parse, negate through ``neg`` dependents
        instead of the three-word window.
    contrast_words: "X but Y" words: X x0.5, Y x1.5 (VADER: "but").
    concessive_words: "although X, Y" words: the clause X x0.5, the rest x1.5.
    scorer: the scoring function, ``spacy_senti.lexicon_scorer.v1`` by default.
    """
    return SentiLexicon(
        nlp.vocab,
        name,
        make_doc=nlp.make_doc,
        lexicon_paths=lexicon_paths,
        domain=domain,
        emotion_lexicon_path=emotion_lexicon_path,
        use_emoji=use_emoji,
        dep_negation=dep_negation,
        contrast_words=contrast_words,
        concessive_words=concessive_words,
        scorer=scorer,
    )


class SentiLexicon(Pipe):
    """Rule-based sentiment scorer; see the module docstring for what it sets."""

    def __init__(
        self,
        vocab: Vocab,
        name: str = "senti_lexicon",
        *,
        make_doc: Callable[[str], Doc] | None = None,
        lexicon_paths: Iterable[str | Path] = (),
        domain: str | None = None,
        emotion_lexicon_path: str | Path | None = None,
        use_emoji: bool = True,
        dep_negation: bool = True,
        contrast_words: Iterable[str] = CONTRAST_WORDS,
        concessive_words: Iterable[str] = CONCESSIVE_WORDS,
        scorer: Callable | None = None,
    ) -> None:
        register_lexicon_extensions()
        if not Doc.has_extension(EMOTION_EXTENSION):
            Doc.set_extension(EMOTION_EXTENSION, default=None)
        self.vocab = vocab
        self.name = name
        self.make_doc = make_doc or (lambda text: Doc(vocab, words=text.split()))
        self.lexicon_paths = [str(p) for p in lexicon_paths]
        self.domain = domain
        self.emotion_lexicon_path = str(emotion_lexicon_path) if emotion_lexicon_path else None
        self.use_emoji = use_emoji
        self.dep_negation = dep_negation
        self.contrast_words = frozenset(w.lower() for w in contrast_words)
        self.concessive_words = frozenset(w.lower() for w in concessive_words)
        self.scorer = scorer
        self.domain_entries = domain_lexicon(domain) if domain else {}
        self.user_entries: dict[str, float] | None = None  # None: not read yet
        self.emotion_entries: dict[str, dict[str, float]] | None = None
        self._rules: RuleSet | None = None
        self._matcher: PhraseMatcher | None = None
        self._emotion_matcher: PhraseMatcher | None = None

    # -- lexicon state ---------------------------------------------------------------------

    def _load_files(self) -> None:
        if self.user_entries is None:
            self.user_entries = read_valence_tsvs(self.lexicon_paths)
        if self.emotion_entries is None and self.emotion_lexicon_path:
            self.emotion_entries = read_emotion_tsv(self.emotion_lexicon_path)

    def add_terms(self, entries: dict[str, float]) -> None:
        """Add or override user terms (saved with the pipeline); valence 0 removes a term."""
        self._load_files()
        user = self.user_entries if self.user_entries is not None else {}
        user.update({normalize_term(k): float(v) for k, v in entries.items()})
        self.user_entries = user
        self._rules = None

    @property
    def lexicon(self) -> dict[str, float]:
        """The effective lexicon: VADER, then the domain additions, then the user terms."""
        return dict(self._ruleset().lexicon)

    def _ruleset(self) -> RuleSet:
        if self._rules is None:
            self._load_files()
            lexicon = dict(vader_lexicon())
            for entries in (self.domain_entries, self.user_entries or {}):
                for term, valence in entries.items():
                    if valence == 0:
                        lexicon.pop(term, None)
                    else:
                        lexicon[term] = valence
            self._rules = RuleSet(
                lexicon,
                contrast_words=self.contrast_words,
                concessive_words=self.concessive_words,
            )
            added = set(self.domain_entries) | set(self.user_entries or {})
            # VADER's own entries with spaces can never match in VADER either
            self._matcher = self._phrase_matcher(t for t in lexicon if " " not in t or t in added)
            self._emotion_matcher = self._phrase_matcher(self.emotion_entries or {})
        return self._rules

    def _phrase_matcher(self, terms: Iterable[str]) -> PhraseMatcher | None:
        """PhraseMatcher over the terms that spaCy splits into several tokens.

        Alphanumeric terms are skipped: if the tokenizer splits one ("cannot"), the items
        re-join the attached pieces anyway.
        """
        matcher = PhraseMatcher(self.vocab, attr="LOWER")
        for term in terms:
            if term.isalnum():
                continue
            pattern = self.make_doc(term)
            if len(pattern) > 1:
                matcher.add(term, [pattern])
        return matcher if len(matcher) else None

    def _matches(self, matcher: PhraseMatcher | None, doc: Doc) -> list[tuple[str, int, int]]:
        """(term, start, end) of non-overlapping phrase matches whose text is the term."""
        if matcher is None:
            return []
        strings = self.vocab.strings
        spans = [
            doc[start:end]
            for match_id, start, end in matcher(doc)
            if normalize_term(doc[start:end].text) == strings[match_id]
        ]
        return [(normalize_term(s.text), s.start, s.end) for s in filter_spans(spans)]

    # -- scoring ---------------------------------------------------------------------------

    def __call__(self, doc: Doc) -> Doc:
        rules = self._ruleset()
        if doc._.lexicon_score is not None:  # scored before: clear the old contributions
            for token in doc:
                token._.valence = None
        phrases = {start: end for _, start, end in self._matches(self._matcher, doc)}
        view = token_view(doc)
        items = build_items(
            view, rules.lexicon, emoji_lexicon() if self.use_emoji else None, phrases
        )
        if doc.has_annotation("SENT_START"):
            items.groups = sentence_groups(doc, items)
        valences = self._valences(doc, items, rules)
        contributions: dict[int, float] = {}
        for token_i, key, valence in zip(items.tokens, items.keys, valences, strict=True):
            if valence or key in rules.lexicon:
                contributions[token_i] = contributions.get(token_i, 0.0) + valence
        for token_i, valence in contributions.items():
            doc[token_i]._.valence = valence
        scores = polarity(valences, "".join(text for text, _, _ in view))
        doc._.lexicon_polarity = scores
        doc._.lexicon_score = scores["compound"]
        if self.emotion_entries is not None:
            doc._.set(EMOTION_EXTENSION, self._emotions(doc))
        return doc

    def _valences(self, doc: Doc, items: Items, rules: RuleSet) -> list[float]:
        cap_diff = allcap_differential(items.texts)
        dep_neg = scope = None
        if self.dep_negation and doc.has_annotation("DEP"):
            dep_neg, scope = dependency_negations(doc, items)
        valences: list[float] = []
        for start, end in items.groups:
            group = group_valences(
                rules,
                items.keys[start:end],
                items.texts[start:end],
                cap_diff,
                dep_neg[start:end] if dep_neg is not None else None,
                scope[start:end] if scope is not None else None,
            )
            reweight_contrast(rules, items.keys[start:end], items.clauses[start:end], group)
            valences.extend(group)
        return valences

    def _emotions(self, doc: Doc) -> dict[str, float]:
        entries = self.emotion_entries or {}
        totals: dict[str, float] = {}
        hits = [normalize_term(t.text) for t in doc]
        hits += [term for term, _, _ in self._matches(self._emotion_matcher, doc)]
        for term in hits:
            for emotion, score in entries.get(term, {}).items():
                totals[emotion] = totals.get(emotion, 0.0) + score
        return totals

    def initialize(
        self, get_examples: Callable[[], Iterable[Example]] | None = None, *, nlp=None
    ) -> None:
        """(Re)read the lexicon files named in the config (drops terms from ``add_terms``)."""
        self.user_entries = None
        self.emotion_entries = None
        self._rules = None
        self._ruleset()

    # -- serialisation ---------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        self._load_files()
        return {"user_lexicon": self.user_entries, "emotion_lexicon": self.emotion_entries}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.user_entries = dict(state.get("user_lexicon") or {})
        emotions = state.get("emotion_lexicon")
        self.emotion_entries = dict(emotions) if emotions is not None else None
        self._rules = None

    def to_bytes(self, *, exclude: Iterable[str] = SimpleFrozenList()) -> bytes:
        """The user and emotion lexicons as msgpack."""
        return srsly.msgpack_dumps(self._state())

    def from_bytes(
        self, bytes_data: bytes, *, exclude: Iterable[str] = SimpleFrozenList()
    ) -> SentiLexicon:
        self._set_state(srsly.msgpack_loads(bytes_data))
        return self

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = SimpleFrozenList()) -> None:
        """Write ``user_lexicon.json`` (and ``emotion_lexicon.json``) under ``path``."""
        path = ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = self._state()
        srsly.write_json(path / USER_FILE, state["user_lexicon"])
        if state["emotion_lexicon"] is not None:
            srsly.write_json(path / EMOTION_FILE, state["emotion_lexicon"])

    def from_disk(
        self, path: str | Path, *, exclude: Iterable[str] = SimpleFrozenList()
    ) -> SentiLexicon:
        path = ensure_path(path)
        user, emotions = path / USER_FILE, path / EMOTION_FILE
        self._set_state(
            {
                "user_lexicon": srsly.read_json(user) if user.exists() else {},
                "emotion_lexicon": srsly.read_json(emotions) if emotions.exists() else None,
            }
        )
        return self


def _label(score: float, neutral: bool) -> str:
    if score >= NEUTRAL_BAND or (not neutral and score >= 0):
        return "positive"
    if score <= -NEUTRAL_BAND or not neutral:
        return "negative"
    return "neutral"


def score_lexicon(examples: Iterable[Example], **kwargs: Any) -> dict[str, float | None]:
    """``lexicon_acc``: accuracy of the compound's polarity against gold
    ``sentiment/{positive,negative[,neutral]}`` cats (None without such gold)."""
    pairs: list[tuple[str, float]] = []
    for eg in examples:
        gold = {
            k.split("/", 1)[1].lower(): v
            for k, v in eg.reference.cats.items()
            if k.startswith("sentiment/")
        }
        if gold and eg.predicted._.lexicon_score is not None:
            pairs.append((max(gold, key=gold.__getitem__), eg.predicted._.lexicon_score))
    if not pairs:
        return {"lexicon_acc": None}
    neutral = any(label == "neutral" for label, _ in pairs)
    correct = sum(label == _label(score, neutral) for label, score in pairs)
    return {"lexicon_acc": correct / len(pairs)}


@registry.scorers("spacy_senti.lexicon_scorer.v1")
def make_lexicon_scorer() -> Callable[..., dict[str, float | None]]:
    """The scorer of ``senti_lexicon``."""
    return score_lexicon


# The 0.1 name of the component class.
LexiconScorer = SentiLexicon

__all__ = ["LexiconScorer", "SentiLexicon", "make_senti_lexicon", "score_lexicon"]

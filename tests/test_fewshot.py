"""``spacy-senti fewshot``: pair generation, the two-stage run on a tiny random BERT (reload,
package, ONNX export), and bad input."""

from __future__ import annotations

import shutil
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import spacy
from helpers import CONFIGS, SENTIMENT_ROWS, sentiment_cats, write_docbin
from spacy.cli import app as spacy_app
from typer.testing import CliRunner

from spacy_senti.cli import app
from spacy_senti.errors import ConfigError, InputError
from spacy_senti.training.fewshot import (
    ContrastiveSettings,
    end_to_end_overrides,
    pick_on_dev,
    run_fewshot,
)
from spacy_senti.training.pairs import jaccard, label_sets, make_pairs

pytest.importorskip("sentence_transformers")

CLASSES = [frozenset({lab}) for lab in "aaaabbbcc"]  # uneven class sizes: 4, 3, 2


# --- pairs -----------------------------------------------------------------------------------
def test_pairs_balanced_without_self_pairs():
    pairs = make_pairs(CLASSES, pairs_per_example=5, seed=1)
    positive = [p for p in pairs if p.target > 0]
    negative = [p for p in pairs if p.target == 0]
    assert len(positive) == len(negative) == 5 * len(CLASSES)
    assert all(p.first != p.second for p in pairs)
    # every doc anchors R positive and R negative pairs, whatever its class size
    assert Counter(p.first for p in positive) == Counter({i: 5 for i in range(len(CLASSES))})
    assert Counter(p.first for p in negative) == Counter({i: 5 for i in range(len(CLASSES))})
    for p in pairs:
        same = CLASSES[p.first] == CLASSES[p.second]
        assert p.target == (1.0 if same else 0.0)


def test_pairs_deterministic_with_a_seed():
    assert make_pairs(CLASSES, 4, seed=3) == make_pairs(CLASSES, 4, seed=3)
    assert make_pairs(CLASSES, 4, seed=3) != make_pairs(CLASSES, 4, seed=4)


def test_multilabel_pairs_by_label_set_overlap():
    sets = [frozenset(s) for s in ({"joy"}, {"joy", "love"}, {"love"}, {"anger"},
                                   {"anger", "fear"}, {"fear"}, set(), set())]
    pairs = make_pairs(sets, pairs_per_example=10, seed=0, single_label=False)
    assert sum(p.target > 0 for p in pairs) == sum(p.target == 0 for p in pairs)
    for p in pairs:
        a, b = sets[p.first], sets[p.second]
        assert p.target == pytest.approx(jaccard(a, b))
    graded = {p.target for p in pairs}
    assert 0.5 in graded and 1.0 in graded  # {joy} vs {joy, love}; two empty label sets
    assert jaccard(frozenset({"a", "b"}), frozenset({"b", "c"})) == pytest.approx(1 / 3)


def test_label_sets_read_one_head():
    nlp = spacy.blank("en")
    docs = [nlp.make_doc(t) for t in ("x", "y", "z")]
    docs[0].cats = {"sentiment/positive": 1.0, "sentiment/negative": 0.0, "emotion/joy": 1.0}
    docs[1].cats = {"emotion/joy": 0.0}
    assert label_sets(docs, "sentiment") == [frozenset({"positive"}), None, None]
    assert label_sets(docs, "emotion") == [frozenset({"joy"}), frozenset(), None]


@pytest.mark.parametrize("sets, single, expected", [
    ([frozenset({"a"})] * 4, True, "at least two classes"),
    ([frozenset({"a"})] * 3 + [frozenset({"b"})], True, "fewer than 2 training examples"),
    ([], True, "No training doc has a label"),
    ([frozenset({"a", "b"}), frozenset({"a"}), frozenset({"b"})], True, "single-label"),
    ([frozenset({"a", "b"})] * 2 + [frozenset({"a"})] * 2, False, "no negative partner"),
])
def test_pairs_bad_input(sets, single, expected):
    with pytest.raises(InputError, match=expected):
        make_pairs(sets, 2, single_label=single)


# --- the two stages --------------------------------------------------------------------------
STAGE2 = ["--training.max_steps", "24", "--training.eval_frequency", "12",
          "--training.optimizer.learn_rate.warmup_steps", "2",
          "--training.optimizer.learn_rate.total_steps", "24",
          "--training.optimizer.learn_rate.initial_rate", "0.01"]


@pytest.fixture(scope="module")
def fewshot_run(tiny_bert, tmp_path_factory) -> Path:
    """``spacy-senti fewshot configs/fewshot.cfg`` on the tiny BERT, through the CLI."""
    root = tmp_path_factory.mktemp("fewshot")
    rows = [(text, sentiment_cats(label)) for text, label in SENTIMENT_ROWS]
    train = write_docbin(root / "train.spacy", rows)
    out = root / "out"
    result = CliRunner().invoke(app, [
        "fewshot", str(CONFIGS / "fewshot.cfg"), str(train), "--dev", str(train),
        "--output", str(out), "--pairs-per-example", "4", "--learn-rate", "1e-3",
        "--seed", "0", "--stage2", "frozen", "--paths.backbone", str(tiny_bert),
        *STAGE2])
    assert result.exit_code == 0, result.output
    assert "contrastive" in result.output and "model-best" in result.output
    return out


def test_two_stages_give_a_pipeline_that_reloads(fewshot_run, tiny_bert):
    import json

    summary = json.loads((fewshot_run / "fewshot.json").read_text())
    assert summary["stage1"]["pairs"] == 2 * 4 * len(SENTIMENT_ROWS)
    assert summary["stage1"]["head"] == "sentiment"
    assert (fewshot_run / "encoder" / "config.json").exists()
    nlp = spacy.load(fewshot_run / "model-best")
    assert nlp.pipe_names == ["transformer", "senti_textcat"]
    assert nlp.config["paths"]["backbone"] == str((fewshot_run / "encoder").resolve())
    doc = nlp("i loved this wonderful film")
    assert doc._.sentiment in {"positive", "negative"}
    assert sum(doc._.sentiment_scores.values()) == pytest.approx(1.0, abs=1e-5)


def test_stage1_moves_the_encoder_and_stage2_keeps_it(fewshot_run, tiny_bert):
    """Stage 1 changed the backbone; configs/fewshot.cfg freezes it in stage 2 (the
    pipeline's transformer weights are the stage-1 encoder's)."""
    from transformers import AutoModel

    tuned = AutoModel.from_pretrained(fewshot_run / "encoder").state_dict()
    random = AutoModel.from_pretrained(tiny_bert).state_dict()
    nlp = spacy.load(fewshot_run / "model-last")
    inside = nlp.get_pipe("transformer").model.transformer.state_dict()
    key = "encoder.layer.0.attention.self.query.weight"
    assert not np.allclose(tuned[key].numpy(), random[key].numpy())
    for name, value in tuned.items():
        if name in inside:
            assert np.allclose(inside[name].numpy(), value.numpy(), atol=1e-6), name


def test_pipeline_packages_and_exports_without_the_encoder(fewshot_run, tmp_path):
    """A normal pipeline: loads without the stage-1 directory, `spacy package` builds a
    wheel, export_onnx gives the same probabilities."""
    from spacy_senti.onnx import SentiOnnx
    from spacy_senti.onnx.export import export_onnx

    model = tmp_path / "model"
    shutil.copytree(fewshot_run / "model-best", model)
    moved = tmp_path / "encoder-moved"
    shutil.move(fewshot_run / "encoder", moved)
    try:
        nlp = spacy.load(model)
        texts = ["i loved this film", "the worst service", "a boring plot"]
        expected = np.array([[d._.sentiment_scores[k] for k in ("negative", "positive")]
                             for d in nlp.pipe(texts)])
    finally:
        shutil.move(moved, fewshot_run / "encoder")

    out = export_onnx(nlp, tmp_path / "onnx")
    runner = SentiOnnx(out, variant="fp32", threads=1)
    columns = [runner.labels.index(f"sentiment/{k}") for k in ("negative", "positive")]
    assert np.abs(runner.predict_probs(texts)[:, columns] - expected).max() <= 1e-3

    packages = tmp_path / "packages"
    packages.mkdir()
    result = CliRunner().invoke(spacy_app, ["package", str(model), str(packages), "--name",
                                            "senti_fewshot", "--version", "0.0.1",
                                            "--build", "none", "--force"])
    assert result.exit_code == 0, result.output
    package_dir = packages / "en_senti_fewshot-0.0.1"
    from test_package import run

    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--skip-dependency-check",
         "--outdir", package_dir / "dist", package_dir], timeout=300)
    wheel = package_dir / "dist" / "en_senti_fewshot-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    data = "en_senti_fewshot/en_senti_fewshot-0.0.1"
    assert {f"{data}/transformer/model", f"{data}/senti_textcat/model"} <= set(names)
    packaged = spacy.load(package_dir / data)
    got = [d._.sentiment_scores["positive"] for d in packaged.pipe(texts)]
    assert np.allclose(got, expected[:, 1], atol=1e-6)


# --- bad input -------------------------------------------------------------------------------
def _run(tmp_path: Path, rows, tiny_bert, config: Path = CONFIGS / "fewshot.cfg", **kwargs):
    train = write_docbin(tmp_path / "train.spacy", rows)
    return run_fewshot(config, train, train, tmp_path / "out",
                       settings=ContrastiveSettings(pairs_per_example=1),
                       overrides={"paths.backbone": str(tiny_bert)}, progress=False, **kwargs)


@pytest.mark.parametrize("labels, expected", [
    (["positive"] * 4, "at least two classes"),
    (["positive"] * 3 + ["negative"], "negative have fewer than 2 training examples"),
])
def test_bad_labels_stop_before_stage_1(tmp_path, tiny_bert, labels, expected):
    rows = [(f"text {i}", sentiment_cats(lab)) for i, lab in enumerate(labels)]
    with pytest.raises(InputError, match=expected):
        _run(tmp_path, rows, tiny_bert)
    assert not (tmp_path / "out").exists()


def test_no_labels_of_any_head(tmp_path, tiny_bert):
    rows = [("good", {"emotion/joy": 1.0}), ("bad", {"emotion/joy": 0.0})]
    with pytest.raises(InputError, match="No training doc has a label of any head"):
        _run(tmp_path, rows, tiny_bert)
    with pytest.raises(InputError, match="--head 'emotion'"):
        _run(tmp_path, rows, tiny_bert, head="emotion")


def test_logistic_head_is_sklearns_fit_on_the_pooled_vectors(fewshot_run):
    """The default --head-fit logistic: the saved head gives exactly the probabilities of
    scikit-learn's LogisticRegression fitted on the training docs' pooled vectors, which
    configs/fewshot.cfg normalises to unit length (so C is SetFit's C), as SetFit's head."""
    import json

    from sklearn.linear_model import LogisticRegression

    from spacy_senti.active.select import pooled_embeddings

    summary = json.loads((fewshot_run / "fewshot.json").read_text())
    fit = summary["stage2"]["logistic"]
    assert summary["stage2"]["head_fit"] == "logistic"
    assert fit["docs"] == len(SENTIMENT_ROWS)
    assert fit["mean_sq_norm"] == pytest.approx(1.0, abs=1e-5)
    assert fit["C_rescaled"] == pytest.approx(fit["C"], rel=1e-5)
    nlp = spacy.load(fewshot_run / "model-last")
    texts = [text for text, _ in SENTIMENT_ROWS]
    docs = list(nlp.pipe(texts))
    X = pooled_embeddings(nlp.get_pipe("senti_textcat"), docs).astype("float64")
    y = [label for _, label in SENTIMENT_ROWS]
    clf = LogisticRegression(C=fit["C_rescaled"], max_iter=2000, random_state=0).fit(X, y)
    expected = clf.predict_proba(X)
    got = np.asarray([[doc.cats[f"sentiment/{c}"] for c in clf.classes_] for doc in docs])
    assert np.abs(got - expected).max() < 1e-4
    assert list(clf.classes_) == fit["classes"]


def test_head_fit_trained_keeps_spacy_trains_head(tmp_path, tiny_bert):
    rows = [(text, sentiment_cats(label)) for text, label in SENTIMENT_ROWS]
    train = write_docbin(tmp_path / "train.spacy", rows)
    summary = run_fewshot(CONFIGS / "fewshot.cfg", train, train, tmp_path / "out",
                          settings=ContrastiveSettings(pairs_per_example=2, seed=0),
                          overrides={"paths.backbone": str(tiny_bert),
                                     "training.max_steps": 12, "training.eval_frequency": 6,
                                     "training.optimizer.learn_rate.warmup_steps": 2,
                                     "training.optimizer.learn_rate.total_steps": 12},
                          progress=False, head_fit="trained")
    assert summary["stage2"]["head_fit"] == "trained" and "logistic" not in summary["stage2"]


def test_logistic_head_fit_gives_both_saved_pipelines_the_same_head(fewshot_run):
    """The encoder is frozen in configs/fewshot.cfg, so model-best gets the refitted head
    too (it is not left with the head spacy train picked)."""
    texts = [text for text, _ in SENTIMENT_ROWS]
    cats = [[d.cats for d in spacy.load(fewshot_run / folder).pipe(texts)]
            for folder in ("model-last", "model-best")]
    for a, b in zip(*cats):
        assert a == pytest.approx(b, abs=1e-6)


def test_default_head_fit_keeps_the_trained_head_of_a_multilabel_head(tmp_path, tiny_bert):
    """Logistic regression fits one label per doc: a multilabel head keeps the head spacy
    train learnt under the default --head-fit, and the summary says so."""
    config = spacy.util.load_config(CONFIGS / "fewshot.cfg", interpolate=False)
    config["components"]["senti_textcat"]["heads"] = {"emotion": {"kind": "multilabel"}}
    config["training"]["score_weights"] = {"senti_macro_f": 1.0}
    config.to_disk(tmp_path / "emotion_fewshot.cfg")
    rows = [("so happy", {"emotion/joy": 1.0, "emotion/anger": 0.0}),
            ("happy and glad", {"emotion/joy": 1.0, "emotion/anger": 0.0}),
            ("so angry", {"emotion/joy": 0.0, "emotion/anger": 1.0}),
            ("angry and mad", {"emotion/joy": 0.0, "emotion/anger": 1.0})]
    summary = _run(tmp_path, rows, tiny_bert, config=tmp_path / "emotion_fewshot.cfg")
    assert summary["stage1"]["head"] == "emotion"
    assert summary["stage2"]["head_fit"] == "trained" and "logistic" not in summary["stage2"]


# --- stage 2: frozen, end to end, or chosen on dev ------------------------------------------
def _transformer_state(path: Path) -> dict:
    return spacy.load(path).get_pipe("transformer").model.transformer.state_dict()


def test_end_to_end_overrides_unfreeze_configs_fewshot():
    """configs/fewshot.cfg with the end-to-end overrides trains the transformer, without the
    frozen-initialisation callback or unit-length features, one dev score per pass."""
    config = spacy.util.load_config(CONFIGS / "fewshot.cfg", interpolate=False)
    got = end_to_end_overrides(config, n_docs=40, learn_rate=1e-4)
    assert got["training.frozen_components"] == [] == got["training.annotating_components"]
    assert got["initialize.before_init"] is None
    assert got["components.senti_textcat.model.normalize"] is False
    assert got["training.max_epochs"] == 20 and got["training.max_steps"] == 0
    assert got["training.eval_frequency"] == 3  # 40 docs in batches of 16
    assert got["training.optimizer.learn_rate.total_steps"] == 60
    assert got["training.optimizer.learn_rate.initial_rate"] == 1e-4
    assert end_to_end_overrides(config, n_docs=500, learn_rate=1e-4)["training.max_epochs"] == 4
    resolved = spacy.util.load_config(CONFIGS / "fewshot.cfg", overrides=got)
    assert resolved["training"]["frozen_components"] == []


def test_auto_stage2_keeps_the_candidate_with_the_better_dev_score(tmp_path, tiny_bert):
    rows = [(text, sentiment_cats(label)) for text, label in SENTIMENT_ROWS]
    summary = _run(tmp_path, rows, tiny_bert, stage2="auto")
    s2 = summary["stage2"]
    runs = s2["candidates"]
    assert s2["mode"] == "auto" and set(runs) == {"frozen", "end-to-end"}
    difference = runs["end-to-end"]["dev_score"] - runs["frozen"]["dev_score"]
    assert s2["difference"] == pytest.approx(difference)
    best = "end-to-end" if difference > s2["standard_error"] else "frozen"
    assert s2["chosen"] == best and s2["dev_docs"] == len(SENTIMENT_ROWS)
    assert runs["frozen"]["head_fit"] == "logistic"
    assert runs["end-to-end"]["head_fit"] == "trained"
    candidates = tmp_path / "out" / "candidates"
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(tmp_path / "out" / "encoder").state_dict()
    frozen = _transformer_state(candidates / "frozen" / "model-best")
    tuned = _transformer_state(candidates / "end-to-end" / "model-best")
    key = "encoder.layer.0.attention.self.query.weight"
    assert np.allclose(frozen[key].numpy(), encoder[key].numpy(), atol=1e-6)
    assert not np.allclose(tuned[key].numpy(), encoder[key].numpy(), atol=1e-6)
    texts = [text for text, _ in SENTIMENT_ROWS]
    kept = [d.cats for d in spacy.load(tmp_path / "out" / "model-best").pipe(texts)]
    chosen = [d.cats for d in spacy.load(candidates / best / "model-best").pipe(texts)]
    for a, b in zip(kept, chosen):
        assert a == pytest.approx(b, abs=1e-6)


def _accuracy(flags) -> float:
    return float(np.mean(flags))


@pytest.mark.parametrize("n, frozen_right, tuned_right, shift, chosen", [
    (20, 10, 12, 8, "frozen"),  # +10 points on 20 docs, right on other docs: noise
    (20, 10, 12, 0, "end-to-end"),  # +10 points, right on every doc frozen gets right too
    (400, 200, 300, 100, "end-to-end"),  # +25 points on 400 docs: far beyond one SE
    (400, 300, 300, 50, "frozen"),  # a tie keeps SetFit's recipe
    (400, 300, 240, 0, "frozen"),
])
def test_pick_on_dev_needs_more_than_one_standard_error(n, frozen_right, tuned_right, shift,
                                                        chosen):
    """Paired over the same dev docs: the tuned candidate is right on docs
    shift .. shift + tuned_right, frozen on the first frozen_right."""
    frozen = [1] * frozen_right + [0] * (n - frozen_right)
    tuned = [0] * shift + [1] * tuned_right + [0] * (n - shift - tuned_right)
    got = pick_on_dev(frozen, tuned, _accuracy, seed=0)
    assert got["chosen"] == chosen
    assert got["difference"] == pytest.approx((tuned_right - frozen_right) / n)
    assert got["dev_docs"] == n and got["standard_error"] > 0


def test_auto_stage2_compares_the_last_models_not_the_dev_selected_ones(fewshot_run, tmp_path):
    """choose_stage2 scores each candidate's model-last: model-best was picked on the same
    dev set, an optimistic score (bench_fewshot.py, N = 8: 3 picks of end-to-end in 20 runs,
    2 of them much worse on test)."""
    from spacy_senti.training.fewshot import choose_stage2

    root = tmp_path / "candidates"
    for name in ("frozen", "end-to-end"):
        shutil.copytree(fewshot_run / "model-last", root / name / "model-last")
    dev = fewshot_run.parent / "train.spacy"
    got = choose_stage2(root, dev)
    assert got["chosen"] == "frozen" and got["difference"] == 0.0
    assert got["dev_docs"] == len(SENTIMENT_ROWS)


def test_encoder_option_reuses_an_earlier_stage_1(fewshot_run, tmp_path, tiny_bert):
    """--encoder skips stage 1 (no pairs, no new encoder/) and trains from the given one."""
    rows = [(text, sentiment_cats(label)) for text, label in SENTIMENT_ROWS]
    summary = _run(tmp_path, rows, tiny_bert, encoder=fewshot_run / "encoder")
    assert summary["stage1"]["reused"] == str(fewshot_run / "encoder")
    assert summary["stage1"]["pairs"] == 0
    assert not (tmp_path / "out" / "encoder").exists()
    nlp = spacy.load(tmp_path / "out" / "model-best")
    assert nlp.config["paths"]["backbone"] == str((fewshot_run / "encoder").resolve())


def test_cli_reuse_names_the_reused_encoder(fewshot_run, tmp_path, tiny_bert):
    rows = [(text, sentiment_cats(label)) for text, label in SENTIMENT_ROWS]
    train = write_docbin(tmp_path / "train.spacy", rows)
    result = CliRunner().invoke(app, [
        "fewshot", str(CONFIGS / "fewshot.cfg"), str(train), "--dev", str(train),
        "--output", str(tmp_path / "out"), "--stage2", "frozen",
        "--encoder", str(fewshot_run / "encoder"), "--paths.backbone", str(tiny_bert),
        *STAGE2])
    assert result.exit_code == 0, result.output
    assert f"tuned encoder in {fewshot_run / 'encoder'}" in " ".join(result.output.split())
    assert not (tmp_path / "out" / "encoder").exists()


def test_bad_stage2_and_encoder_are_refused(tmp_path, tiny_bert):
    rows = [(text, sentiment_cats(label)) for text, label in SENTIMENT_ROWS]
    with pytest.raises(ConfigError, match="Unknown stage 2 'both'"):
        _run(tmp_path, rows, tiny_bert, stage2="both")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a tuned encoder"):
        _run(tmp_path, rows, tiny_bert, encoder=tmp_path / "empty")
    assert not (tmp_path / "out").exists()

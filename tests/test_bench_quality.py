"""bench/bench_quality.py: every run's overrides are valid config keys; tables judge targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import load_bench_script
from spacy import util
from spacy.cli._util import parse_config_overrides
from spacy.util import registry

import spacy_senti  # noqa: F401  (registers the optimizers the levers swap in)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bq():
    return load_bench_script("bench_quality")


def test_runs_reference_known_benchmarks_and_baselines(bq):
    for run_id, run in bq.RUNS.items():
        assert run.benchmark in bq.BENCHMARKS, run_id
        assert not run.baseline or run.baseline in bq.RUNS, run_id
        assert not run.baseline or bq.RUNS[run.baseline].benchmark == run.benchmark, run_id
    quality = {run.benchmark for run in bq.RUNS.values() if not run.baseline}
    assert quality == set(bq.BENCHMARKS)  # every benchmark has its quality row


@pytest.mark.parametrize("run_id", ["sst2", "goemotions", "multitask", "tweeteval-focal",
                                    "absa-select-polarity", "tweeteval-llrd", "tweeteval-ema",
                                    "absa-terms-restaurants"])
def test_train_command_overrides_are_valid_config_keys(bq, run_id):
    """A typo in an override would fail here, not after an hour of training."""
    cmd = bq.train_command(run_id, bq.RUNS[run_id], gpu_id=-1)
    config_path = REPO / cmd[cmd.index("train") + 1]
    flags = [arg for arg in cmd[cmd.index("train") + 2 :]]
    flags = flags[flags.index("--paths.train") :]
    flags = [f for i, f in enumerate(flags) if f != "--gpu-id" and flags[i - 1] != "--gpu-id"]
    overrides = parse_config_overrides(flags)
    base = util.load_config(config_path, interpolate=False)
    for key in overrides:  # thinc would silently add a misspelt leaf key
        node = base
        section, leaf = key.rsplit(".", 1)
        for part in section.split("."):
            assert part in node, f"{run_id}: {key} is not in {config_path.name}"
            node = node[part]
        # a new leaf is only valid as an argument of a function the run also swaps in
        swapped = any(k.startswith(section + ".@") for k in overrides)
        assert leaf in node or swapped, f"{run_id}: {key} is not in {config_path.name}"
    config = util.load_config(config_path, overrides=overrides, interpolate=True)
    assert config["training"]["max_steps"] == bq.RUNS[run_id].steps
    assert config["training"]["optimizer"]["learn_rate"]["total_steps"] == bq.RUNS[run_id].steps
    for key, value in overrides.items():
        node = config
        for part in key.split("."):
            node = node[part]
        assert node == value
    registry.resolve({"optimizer": config["training"]["optimizer"]})  # its arguments fit


def _result(scores: dict[str, float]) -> dict:
    return {
        "scores": scores,
        "n_train": 100,
        "n_test": 10,
        "steps": 5,
        "epochs": 1.6,
        "learn_rate": 1e-4,
        "train_minutes": 0.1,
        "device": "cpu",
        "threads": "1",
        "date": "today",
        "command": "python -m spacy train x",
        "report": "quality/x/report.md",
        "versions": "v",
    }


def test_render_judges_targets_and_multitask(bq):
    store = {
        "sst2": _result({"accuracy": 0.92, "macro-F1": 0.91}),
        "tweeteval": _result({"macro-F1": 0.70, "accuracy": 0.75}),
        "fpb": {
            **_result({"accuracy": 0.90, "macro-F1": 0.85}),
            "lexicon": {
                "model": {"acc": 0.9, "macro_f1": 0.85},
                "lexicon": {"acc": 0.6, "macro_f1": 0.5},
                "hybrid": {"acc": 0.91, "macro_f1": 0.86},
            },
        },
        "multitask": _result(
            {
                "sentiment (FPB) accuracy": 0.895,
                "sentiment (FPB) macro-F1": 0.80,
                "emotion (TweetEval) macro-F1": 0.71,
                "aspect (SemEval-14) detection micro-F1": 0.8,
                "aspect (SemEval-14) polarity accuracy": 0.7,
            }
        ),
        "carer": {  # judged on the whole published test file, de-duplicated shown beside it
            **_result({"macro-F1": 0.883, "accuracy": 0.93}),
            "official": {"scores": {"macro-F1": 0.876, "accuracy": 0.92}, "n_test": 2000},
        },
        "tweeteval-focal": _result({"macro-F1": 0.72, "accuracy": 0.74}),
    }
    quality = bq.render_quality(store)
    assert "| SST-2 | accuracy | 92.0 | = | 91.5 | yes |" in quality
    assert "| TweetEval emotion | macro-F1 | 70.0 | = | 78.5 | **no** |" in quality
    assert "| GoEmotions | macro-F1, micro-F1 | not run | |" in quality
    assert "| CARER emotion | macro-F1 | 87.6 | 88.3 (n=10) | 89.0 | **no** | 100 / 2,000 |" in (
        quality
    )
    assert "| sentiment (FPB) accuracy | 90.0 | 89.5 | -0.5 | yes |" in quality
    assert "| sentiment (FPB) macro-F1 | 85.0 | 80.0 | -5.0 | **no** |" in quality
    assert "| Financial PhraseBank AllAgree | 90.0 / 85.0 | 60.0 / 50.0 | 91.0 / 86.0 | yes |" in (
        quality
    )
    assert "| SST-2 | not run |" in quality  # trained, but no lexicon comparison stored
    levers = bq.render_levers(store)
    assert "| macro-F1 70.0 | 72.0 | +2.0 (accuracy 75.0->74.0) | yes |" in levers
    assert "`tweeteval-cls`" in levers and "not run" in levers


def test_model_names_are_package_names(bq):
    for run_id in bq.RUNS:
        name = bq.model_name(run_id)
        assert name.startswith("senti_bench_") and name.replace("_", "").isalnum(), name
    assert bq.model_name("tweeteval-lr5e-5") == "senti_bench_tweeteval_lr5e_5"
    assert set(bq.META_SOURCES) <= set(bq.BENCHMARKS)


OLD_HEADER = [
    "# Evaluation report: en_pipeline 0.0.0",
    "",
    "- model: `en_pipeline` version 0.0.0, loaded from `/somewhere/else/repo/training/bench/"
    "sst2/model-best`",
    "- data: `/somewhere/else/repo/corpus/full/sst2/test.spacy` (2 docs)",
    "- overall: macro-F1 0.500, micro-F1 0.750, accuracy 0.750 (means over heads)",
    "",
]


def test_rewrite_header_of_an_old_report(bq, tmp_path):
    import srsly

    body = ["## Summary", "", "| head | kind |", "|---|---|", "| sentiment | exclusive |", ""]
    metrics = {
        "model": {"name": "en_pipeline", "version": "0.0.0",
                  "source": "/somewhere/else/repo/training/bench/sst2/model-best"},
        "data": "/somewhere/else/repo/corpus/full/sst2/test.spacy",
        "n_docs": 2,
        "unknown_gold_keys": [],
        "scores": {"senti_macro_f": 0.5, "senti_micro_f": 0.75, "senti_acc": 0.75},
        "heads": {"sentiment": {"kind": "exclusive", "n": 2}},
    }
    srsly.write_json(tmp_path / "metrics.json", metrics)
    (tmp_path / "report.md").write_text("\n".join(OLD_HEADER + body), encoding="utf8")
    assert bq.rewrite_header(tmp_path)
    md = (tmp_path / "report.md").read_text(encoding="utf8")
    new = srsly.read_json(tmp_path / "metrics.json")
    assert "/somewhere" not in md and "/somewhere" not in str(new)
    assert "en_pipeline" not in md and "en_pipeline" not in str(new)
    assert md.startswith("# Evaluation report: training/bench/sst2/model-best\n")
    assert "- model: `training/bench/sst2/model-best` (unnamed pipeline: meta name 'pipeline'" in md
    assert "- data: `corpus/full/sst2/test.spacy` (2 docs)" in md
    assert OLD_HEADER[4] in md and "not re-computed" in md
    assert md.endswith("\n".join(body))  # the tables are untouched
    assert new["scores"] == metrics["scores"] and new["heads"] == metrics["heads"]
    assert new["model"] == {"name": "training/bench/sst2/model-best", "version": "",
                            "source": "training/bench/sst2/model-best", "named": False,
                            "meta_name": "pipeline", "meta_version": "0.0.0"}
    assert not bq.rewrite_header(tmp_path)  # idempotent
    assert (tmp_path / "report.md").read_text(encoding="utf8") == md


@pytest.mark.parametrize("folder", ["bench/results/quality", "docs/example_report"])
def test_committed_reports_have_no_machine_paths_or_placeholder_names(folder):
    files = [p for p in (REPO / folder).rglob("*") if p.name in ("report.md", "metrics.json")]
    assert files
    for path in files:
        text = path.read_text(encoding="utf8")
        assert "/work/" not in text and "/home/" not in text, path
        assert "en_pipeline" not in text, path


def test_seed_flag_reaches_the_config_and_the_output_folder(bq):
    run = bq.RUNS["absa-terms-laptops"]
    cmd = bq.train_command("absa-terms-laptops", run, gpu_id=-1, seed=2)
    assert cmd[cmd.index("--system.seed") + 1] == "2"
    assert cmd[cmd.index("--output") + 1].endswith("absa-terms-laptops-seed2")
    assert "--system.seed" not in bq.train_command("absa-terms-laptops", run, gpu_id=-1)


def test_merge_seed_keeps_each_seed_and_reports_mean_and_std(bq):
    first = {**_result({"term F1": 0.80, "pair F1": None}), "seed": 0}
    entry = bq.merge_seed(None, first)
    assert entry["scores"] == {"term F1": 0.80, "pair F1": None}
    assert "scores_std" not in entry and entry["seeds"] == [0]
    second = {**_result({"term F1": 0.84, "pair F1": 0.7}), "seed": 1, "train_minutes": 0.3}
    entry = bq.merge_seed(entry, second)
    assert entry["seeds"] == [0, 1]
    assert entry["scores"]["term F1"] == pytest.approx(0.82)
    assert entry["scores_std"]["term F1"] == pytest.approx(0.02)
    # a seed with no value for a metric is left out of its mean, not counted as 0
    assert entry["scores"]["pair F1"] == pytest.approx(0.7)
    assert entry["scores_std"]["pair F1"] is None
    assert entry["train_minutes"] == pytest.approx(0.2)
    # re-running a seed replaces it instead of counting it twice
    again = bq.merge_seed(entry, {**second, "scores": {"term F1": 0.88, "pair F1": 0.7}})
    assert again["seeds"] == [0, 1]
    assert again["scores"]["term F1"] == pytest.approx(0.84)


def test_merge_seed_reads_an_entry_stored_before_seeds_as_seed_0(bq):
    old = _result({"term F1": 0.80})  # no "seed", no "per_seed"
    entry = bq.merge_seed(old, {**_result({"term F1": 0.90}), "seed": 1})
    assert entry["seeds"] == [0, 1]
    assert entry["scores"]["term F1"] == pytest.approx(0.85)


def test_quality_table_shows_mean_and_std_over_seeds(bq):
    entry = bq.merge_seed(None, {**_result({"term F1": 0.80, "polarity accuracy": 0.8,
                                            "polarity macro-F1": 0.7, "pair F1": 0.6}),
                                 "seed": 0})
    entry = bq.merge_seed(entry, {**_result({"term F1": 0.90, "polarity accuracy": 0.8,
                                             "polarity macro-F1": 0.7, "pair F1": 0.6}),
                                  "seed": 1})
    table = bq.render_quality({"absa-terms-laptops": entry})
    row = next(line for line in table.splitlines() if "laptops terms | term F1" in line)
    assert "85.0 ± 5.0" in row and "mean of seeds 0, 1" in row and "| yes |" in row


def test_levers_compare_mean_and_std_on_the_seeds_both_ran(bq):
    def runs(values: dict[int, float]) -> dict:
        entry = None
        for seed, value in values.items():
            entry = bq.merge_seed(entry, {**_result({"macro-F1": value, "accuracy": 0.8}),
                                          "seed": seed})
        return entry

    store = {  # the baseline has a seed the lever lacks: it is left out of both sides
        "tweeteval": runs({0: 0.70, 1: 0.74, 2: 0.72, 3: 0.90}),
        "tweeteval-ema": runs({0: 0.71, 1: 0.76, 2: 0.72}),
    }
    row = next(line for line in bq.render_levers(store).splitlines()
               if line.startswith("| `tweeteval-ema`"))
    # baseline 72.0 +/- 1.6 (seeds 0-2 only), result 73.0 +/- 2.2, differences +1, +2, 0
    assert "| macro-F1 72.0 ± 1.6 | 73.0 ± 2.2 | +1.0 ± 0.8; seeds 0, 1, 2 | yes |" in row


def test_a_lever_is_judged_on_its_own_metric(bq):
    assert bq.RUNS["absa-select-polarity"].metric in bq.BENCHMARKS[
        bq.RUNS["absa-select-polarity"].benchmark].metrics
    store = {"absa": _result({"detection micro-F1": 0.90, "polarity accuracy": 0.80}),
             "absa-select-polarity": _result({"detection micro-F1": 0.85,
                                              "polarity accuracy": 0.82})}
    row = next(line for line in bq.render_levers(store).splitlines()
               if line.startswith("| `absa-select-polarity`"))
    assert "| polarity accuracy 80.0 | 82.0 | +2.0 (detection micro-F1 90.0->85.0) | yes |" in row


def test_a_baseline_rerun_from_a_changed_config_keeps_its_old_levers_paired(bq):
    old_base = {**_result({"macro-F1": 0.70, "accuracy": 0.80}), "seed": 0}  # no config_md5
    old_lever = {**_result({"macro-F1": 0.72, "accuracy": 0.81}), "seed": 0}
    base = bq.merge_seed(None, old_base)
    base = bq.merge_seed(base, {**_result({"macro-F1": 0.76, "accuracy": 0.83}), "seed": 0,
                                "config_md5": "new"})
    assert base["scores"]["macro-F1"] == 0.76 and len(base["superseded"]) == 1
    new_lever = bq.merge_seed(None, {**_result({"macro-F1": 0.75, "accuracy": 0.82}),
                                     "seed": 0, "config_md5": "new"})
    store = {"tweeteval": base, "tweeteval-focal": bq.merge_seed(None, old_lever),
             "tweeteval-ema": new_lever}
    rows = {line.split("|")[1].strip(): line for line in bq.render_levers(store).splitlines()
            if line.startswith("| `")}
    # the old lever against the baseline it was measured with, the new against the new
    focal, ema = rows["`tweeteval-focal`"], rows["`tweeteval-ema`"]
    assert "| macro-F1 70.0 | 72.0 | +2.0 (accuracy 80.0->81.0) | yes |" in focal
    assert "| macro-F1 76.0 | 75.0 | -1.0 (accuracy 83.0->82.0) | no |" in ema


def test_the_published_test_score_is_averaged_over_the_same_seeds(bq):
    entry = None
    for seed, (dedup, whole) in enumerate([(0.90, 0.88), (0.92, 0.90)]):
        entry = bq.merge_seed(entry, {
            **_result({"macro-F1": dedup, "accuracy": 0.93}), "seed": seed,
            "official": {"scores": {"macro-F1": whole, "accuracy": 0.92}, "n_test": 2000}})
    assert entry["official"]["scores"]["macro-F1"] == pytest.approx(0.89)
    assert entry["official"]["scores_std"]["macro-F1"] == pytest.approx(0.01)
    row = next(line for line in bq.render_quality({"carer": entry}).splitlines()
               if line.startswith("| CARER emotion | macro-F1"))
    # judged on the whole file's mean (89.0 >= 89.0), the de-duplicated mean beside it
    assert "| 89.0 ± 1.0 | 91.0 (n=10) | 89.0 | yes |" in row


def test_official_scores_evaluate_the_seeds_own_model(bq, tmp_path, monkeypatch):
    """Every seed used to be scored with seed 0's model on the published test file."""
    (tmp_path / "shared" / "data").mkdir(parents=True)
    corpus = tmp_path / "corpus"
    (corpus / "carer").mkdir(parents=True)
    (corpus / "carer" / "test_official.spacy").touch()
    monkeypatch.setattr(bq, "REPO", tmp_path / "repo")
    monkeypatch.setattr(bq, "CORPUS", corpus)
    monkeypatch.setattr(bq, "WORK", tmp_path / "work")
    monkeypatch.setattr(bq, "REPORTS", tmp_path / "reports")
    evaluated = []

    def fake_sh(cmd, log=None):
        model, out = Path(cmd[cmd.index("evaluate") + 1]), Path(cmd[cmd.index("--output") + 1])
        evaluated.append(model.relative_to(tmp_path / "work").as_posix())
        out.mkdir(parents=True)
        score = 0.9 if "seed2" in str(model) else 0.8
        (out / "metrics.json").write_text(json.dumps({"n_docs": 2000, "scores": {
            "senti_emotion_macro_f": score, "senti_emotion_acc": 0.9}}))
        return 0.0

    monkeypatch.setattr(bq, "sh", fake_sh)
    assert bq.official_scores("carer", seed=2)["scores"]["macro-F1"] == 0.9
    assert bq.official_scores("carer", seed=0)["scores"]["macro-F1"] == 0.8
    assert evaluated == ["carer-seed2/model-best", "carer/model-best"]


def test_rewrite_headers_passes_over_reports_without_heads(bq, tmp_path):
    """An aspect-terms-only report has no "- overall:" line; it used to stop the rewrite."""
    import srsly

    for name in ("absa-terms-laptops", "sst2"):
        (tmp_path / name).mkdir()
    terms = tmp_path / "absa-terms-laptops"
    srsly.write_json(terms / "metrics.json", {
        "model": {"name": "training/bench/absa-terms-laptops/model-best", "version": "",
                  "source": "training/bench/absa-terms-laptops/model-best", "named": False},
        "data": "corpus/full/absa_terms_laptops/test.spacy", "n_docs": 2, "scores": {}})
    text = "# Evaluation report: x\n\n- aspect terms: term F1 0.700\n\n## Aspect terms\n"
    (terms / "report.md").write_text(text, encoding="utf8")
    srsly.write_json(tmp_path / "sst2" / "metrics.json", {
        "model": {"name": "en_pipeline", "version": "0.0.0",
                  "source": "/somewhere/else/repo/training/bench/sst2/model-best"},
        "data": "/somewhere/else/repo/corpus/full/sst2/test.spacy", "n_docs": 2,
        "scores": {"senti_macro_f": 0.5, "senti_micro_f": 0.75, "senti_acc": 0.75},
        "heads": {"sentiment": {"kind": "exclusive", "n": 2}}})
    (tmp_path / "sst2" / "report.md").write_text("\n".join(OLD_HEADER + ["## Summary"]),
                                                 encoding="utf8")
    assert bq.rewrite_headers(tmp_path) == [tmp_path / "sst2"]
    assert (terms / "report.md").read_text(encoding="utf8") == text

"""``spacy-senti fewshot``: contrastive stage 1 (SetFit-style), then ``spacy train``."""

from __future__ import annotations

from pathlib import Path

import typer

from ..util import check_exists
from ._util import app, fmt, print_table, table


@app.command("fewshot", context_settings={"allow_extra_args": True,
                                          "ignore_unknown_options": True})
def fewshot_command(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="Stage-2 training config, e.g. configs/fewshot.cfg."),
    train: Path = typer.Argument(..., help="Labelled training DocBin (.spacy, or a directory)."),
    dev: Path = typer.Option(..., "--dev", help="Dev DocBin for spacy train's evaluation."),
    output: Path = typer.Option(..., "--output", "-o",
                                help="Directory for encoder/, model-best/, model-last/."),
    pairs_per_example: int = typer.Option(20, "--pairs-per-example", "-r", min=1,
                                          help="Positive + negative pairs drawn per doc "
                                          "(SetFit's num_iterations)."),
    epochs: int = typer.Option(1, "--epochs", "-e", min=1, help="Stage-1 passes over pairs."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Stage-1 pairs per step."),
    learn_rate: float = typer.Option(2e-5, "--learn-rate", min=0.0,
                                     help="Stage-1 peak learning rate (AdamW)."),
    head: str | None = typer.Option(None, "--head", help="Head whose labels build the pairs "
                                    "(default: the first single-label head in TRAIN)."),
    seed: int = typer.Option(0, "--seed"),
    head_fit: str = typer.Option("logistic", "--head-fit", help="'logistic': refit a "
                                 "single-label head with logistic regression on the pooled "
                                 "vectors after stage 2 (SetFit's head; other heads keep the "
                                 "trained one); 'trained': the head spacy train learnt."),
    stage2: str = typer.Option("auto", "--stage2", help="'frozen': CONFIG as written "
                               "(configs/fewshot.cfg trains the heads over the frozen tuned "
                               "encoder, as SetFit); 'end-to-end': fine-tune the whole "
                               "pipeline from the tuned encoder; 'auto': both, keep "
                               "end-to-end only when its last model beats frozen's on DEV "
                               "by more than one standard error."),
    end_to_end_learn_rate: float = typer.Option(1e-4, "--end-to-end-learn-rate", min=0.0,
                                                help="Peak learning rate of the end-to-end "
                                                "stage 2."),
    encoder: Path | None = typer.Option(None, "--encoder", help="Skip stage 1: train stage "
                                        "2 from this encoder/ folder of an earlier run."),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="GPU for both stages (-1: CPU)."),
) -> None:
    """Few labels: tune the backbone on pairs of TRAIN's docs (same label close, different
    apart), then train CONFIG from it with spacy train.

    Extra ``--section.key value`` options override the config, as with ``spacy train``.
    """
    from spacy.cli._util import parse_config_overrides

    from ..training.fewshot import ContrastiveSettings, run_fewshot

    overrides = parse_config_overrides(ctx.args)
    check_exists(config, "CONFIG file")
    check_exists(train, "TRAIN file")
    check_exists(dev, "DEV file")
    settings = ContrastiveSettings(pairs_per_example=pairs_per_example, epochs=epochs,
                                   batch_size=batch_size, learn_rate=learn_rate, seed=seed)
    if encoder is not None:
        check_exists(encoder, "--encoder folder")
    summary = run_fewshot(config, train, dev, output, settings=settings, head=head,
                          head_fit=head_fit, stage2=stage2,
                          end_to_end_learn_rate=end_to_end_learn_rate, encoder=encoder,
                          overrides=overrides, use_gpu=gpu_id)
    s1, s2 = summary["stage1"], summary["stage2"]
    stage1_row = (("1 contrastive", f"reused {s1['reused']}", "0") if "reused" in s1 else
                  ("1 contrastive", f"{s1['pairs']} pairs of {s1['docs']} docs (head "
                   f"{s1['head']}), loss {fmt(s1['first_loss'])} -> {fmt(s1['last_loss'])}",
                   fmt(s1["seconds"], 0)))
    if s2["mode"] == "auto":
        stage2_rows = [(f"2 {name}", f"dev score {fmt(info['dev_score'])}"
                        + (" (kept)" if name == s2["chosen"] else ""), fmt(info["seconds"], 0))
                       for name, info in s2["candidates"].items()]
    else:
        stage2_rows = [(f"2 {s2['mode']}", str(config), fmt(s2["seconds"], 0))]
    print_table(table("spacy-senti fewshot", ("stage", "what", "seconds"),
                      [stage1_row, *stage2_rows], left=2))
    if s2["mode"] == "auto":
        typer.echo(f"Stage 2 kept: {s2['chosen']} (end-to-end - frozen on {s2['dev_docs']} dev "
                   f"docs: {fmt(s2['difference'])}; end-to-end needs more than one standard "
                   f"error, {fmt(s2['standard_error'])})")
    typer.echo(f"Pipeline saved to {Path(output) / 'model-best'} (and model-last); tuned "
               f"encoder in {s1.get('reused') or Path(output) / 'encoder'}")

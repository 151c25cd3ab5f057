"""``spacy-senti backbone path`` and ``spacy-senti backbone export``: the transformer backbone."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from ..backbone import DEFAULT_BACKBONE, resolve_backbone
from ..errors import InputError
from ._util import SentiTyper, app

backbone_app = SentiTyper(help="Find or copy the transformer backbone.", no_args_is_help=True)
app.add_typer(backbone_app, name="backbone")


@backbone_app.command("path")
def backbone_path(name: str = typer.Argument(DEFAULT_BACKBONE, help="Backbone name or path.")):
    """Print where a backbone name resolves to."""
    typer.echo(resolve_backbone(name))


@backbone_app.command("export")
def backbone_export(
    out_dir: Path = typer.Argument(..., help="Directory to copy the backbone into."),
    name: str = typer.Option(DEFAULT_BACKBONE, "--name", help="Backbone name or path."),
):
    """Copy a local backbone (default: all-MiniLM-L6-v2) into OUT_DIR for `paths.backbone`."""
    src = Path(resolve_backbone(name))
    if not src.is_dir():
        raise InputError(f"{name!r} is a Hub name, not a local directory: nothing to copy.")
    shutil.copytree(src, out_dir, dirs_exist_ok=True)
    typer.echo(f"Copied {src} -> {out_dir}")

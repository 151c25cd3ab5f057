"""What every command shares: the app, the one error printer, tables and numbers.

Each command module does ``from ._util import app`` and registers itself with
``@app.command(...)`` (as in spaCy's ``spacy/cli``); ``cli/__init__.py`` only imports the
modules. Commands parse arguments, call library functions and print results; library code
raises :class:`~spacy_senti.errors.SentiError` subclasses and never prints or exits.

Errors are caught in one place: :meth:`SentiTyper.command` wraps every command so that a user
error (a ``SentiError`` or one of the few library exceptions in :data:`USER_ERRORS`) prints
``Error: <message>`` in red on stderr and exits with code 1, without a traceback. Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import typer
from confection import ConfigValidationError
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from ..errors import SentiError

F = TypeVar("F", bound=Callable[..., Any])

# Exceptions that mean bad input rather than a bug: spacy-senti's own family, an invalid
# config or config override (``spacy train``-style options of ``cv``), option values rejected
# by a settings model (``serve``), undecodable text and files that cannot be opened.
USER_ERRORS: tuple[type[BaseException], ...] = (
    SentiError,
    ConfigValidationError,
    ValidationError,
    UnicodeDecodeError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def error(message: str) -> None:
    """Print ``Error: <message>`` in red on stderr (the only way commands report errors)."""
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)


def warn(message: str) -> None:
    """Print ``Warning: <message>`` in yellow on stderr."""
    typer.secho(f"Warning: {message}", fg=typer.colors.YELLOW, err=True)


def error_message(err: BaseException) -> str:
    """The one-line (or few-line) text of a user error, without the exception's class name."""
    if isinstance(err, ValidationError):  # pydantic: name the option, not the model field
        return "; ".join(
            f"--{'.'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}"
            for e in err.errors()
        )
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.strerror}: {err.filename}"
    return str(err).strip()  # confection's errors start with blank lines


def catch_user_errors(func: F) -> F:
    """Run a command; turn a user error into ``Error: <message>`` and exit code 1."""

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as err:
            error(error_message(err))
            raise typer.Exit(1) from None

    return command  # type: ignore[return-value]


class SentiTyper(typer.Typer):
    """A Typer app whose commands report user errors the same way (see module docstring).

    ``@app.command(...)`` returns the wrapped function, so a command also reports errors
    when it is registered on another Typer app.
    """

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().command(*args, **kwargs)

        def decorator(func: F) -> F:
            wrapped = catch_user_errors(func)
            register(wrapped)
            return wrapped

        return decorator


app = SentiTyper(
    name="spacy-senti",
    help="Sentiment, emotion and aspect analysis for spaCy: data, evaluation and serving tools.",
    no_args_is_help=True,
    add_completion=False,
)


# --- numbers and tables ------------------------------------------------------------------------
def fmt(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals, or an en dash when it is missing."""
    return "–" if value is None else f"{value:.{digits}f}"


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[str]] = (),
          left: int = 1) -> Table:
    """A rich table; the first ``left`` columns are left-aligned, the numbers right-aligned."""
    result = Table(title=title)
    for i, column in enumerate(columns):
        result.add_column(column, justify="left" if i < left else "right")
    for row in rows:
        result.add_row(*row)
    return result


def print_table(rich_table: Table) -> None:
    """Print a rich table to stdout."""
    Console().print(rich_table)

"""Text normalisation applied by ``spacy-senti convert`` before a text becomes a Doc.

Every step is a small pure function; :class:`CleanConfig` chooses which ones run. Only the
whitespace collapse is on by default, so converted texts stay as close to the source as
possible. Emoji are never removed.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

URL_PLACEHOLDER = "http"
USER_PLACEHOLDER = "@user"

_TAG_RE = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>|<!--.*?-->", re.DOTALL)
_BREAK_RE = re.compile(r"<\s*(?:br|/?p|/?div|/?li)\b[^<>]*>", re.IGNORECASE)
_URL_RE = re.compile(  # trailing punctuation stays outside the URL
    r"(?:\bhttps?://|\bwww\.)(?:[^\s<>\"]*[^\s<>\".,!?;:)\]'])?", re.IGNORECASE
)
_USER_RE = re.compile(r"(?<![\w@])@\w+")


@dataclass(frozen=True)
class CleanConfig:
    """Which cleaning steps run (in this order: unicode, html, urls, users, whitespace)."""

    fix_unicode: bool = False
    html: bool = False
    normalize_urls: bool = False
    normalize_users: bool = False
    whitespace: bool = True

    def describe(self) -> str:
        """Names of the enabled steps, e.g. ``"html, whitespace"`` (``"none"`` if none)."""
        steps = [name for name, on in vars(self).items() if on]
        return ", ".join(steps) if steps else "none"


def fix_unicode(text: str) -> str:
    """Repair mojibake and odd code points with ftfy (HTML entities and quotes are kept)."""
    import ftfy

    config = ftfy.TextFixerConfig(unescape_html=False, uncurl_quotes=False, explain=False)
    return ftfy.fix_text(text, config=config)


def strip_html(text: str) -> str:
    """Drop HTML tags (line-breaking tags become spaces), then unescape entities.

    Tags are removed before unescaping, so an escaped ``&lt;3`` survives as the text ``<3``.
    """
    text = _BREAK_RE.sub(" ", text)
    text = _TAG_RE.sub("", text)
    return html.unescape(text)


def normalize_urls(text: str, placeholder: str = URL_PLACEHOLDER) -> str:
    """Replace every URL (``http(s)://...`` or ``www....``) with a placeholder."""
    return _URL_RE.sub(placeholder, text)


def normalize_users(text: str, placeholder: str = USER_PLACEHOLDER) -> str:
    """Replace ``@handle`` mentions with ``@user`` (as TweetEval does); e-mails are kept."""
    return _USER_RE.sub(placeholder, text)


def collapse_whitespace(text: str) -> str:
    """Collapse runs of (Unicode) whitespace to one space and strip both ends."""
    return " ".join(text.split())


def clean_text(text: str, config: CleanConfig | None = None) -> str:
    """Apply the steps enabled in ``config`` (default: whitespace collapse only)."""
    config = config or CleanConfig()
    if config.fix_unicode:
        text = fix_unicode(text)
    if config.html:
        text = strip_html(text)
    if config.normalize_urls:
        text = normalize_urls(text)
    if config.normalize_users:
        text = normalize_users(text)
    if config.whitespace:
        text = collapse_whitespace(text)
    return text

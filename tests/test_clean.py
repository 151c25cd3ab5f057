"""Text cleaning used by spacy-senti convert."""

from __future__ import annotations

from spacy_senti.data.clean import (
    CleanConfig,
    clean_text,
    collapse_whitespace,
    fix_unicode,
    normalize_urls,
    normalize_users,
    strip_html,
)

# Real airline tweet (Tweets.csv row 337): mentions, hashtags, line breaks, emoji.
TWEET = "@VirginAmerica Many Thanks for the Follow.\n#ourprincess #freyasfund #USA #Bandie \n" \
        "Looking for Any Help😍"


def test_default_config_only_collapses_whitespace():
    assert CleanConfig().describe() == "whitespace"
    assert clean_text(TWEET) == (
        "@VirginAmerica Many Thanks for the Follow. #ourprincess #freyasfund #USA #Bandie "
        "Looking for Any Help😍"
    )
    # SST-2 rows end in a space before the tab: stripped by default, kept on request
    assert clean_text("hide new secretions from the parental units ") == (
        "hide new secretions from the parental units"
    )
    raw = "a  b \t"
    assert clean_text(raw, CleanConfig(whitespace=False)) == raw


def test_whitespace_collapse_handles_unicode_spaces():
    assert collapse_whitespace("a\u00a0\u2009b\r\n c ") == "a b c"


def test_strip_html_tags_then_entities():
    assert strip_html("<p>Great <b>food</b> &amp; service</p><br/>love it") == (
        " Great food & service  love it"
    )
    # escaped markup and hearts survive as text; a bare '<3' is not a tag
    assert strip_html("i &lt;3 this <3 &quot;so&quot; much") == 'i <3 this <3 "so" much'
    assert clean_text("F*&amp;N&amp;* <i>LONG</i>  HORNS", CleanConfig(html=True)) == (
        "F*&N&* LONG HORNS"
    )


def test_fix_unicode_repairs_mojibake_keeps_quotes_and_entities():
    assert fix_unicode("The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.") == (
        "The Mona Lisa doesn’t have eyebrows."
    )
    assert fix_unicode("“quoted” &amp; kept 😍") == "“quoted” &amp; kept 😍"


def test_urls_and_users_are_normalised_like_tweeteval():
    text = "@united thanks! see https://t.co/abc123 or www.united.com, mail me@example.com"
    assert normalize_urls(text) == "@united thanks! see http or http, mail me@example.com"
    assert normalize_users(text).startswith("@user thanks!")
    assert "me@example.com" in normalize_users(text)
    cfg = CleanConfig(normalize_urls=True, normalize_users=True)
    assert clean_text("@VirginAmerica  @dhepburn said http://t.co/x", cfg) == (
        "@user @user said http"
    )
    # TweetEval already uses @user: idempotent
    assert normalize_users("@user @user") == "@user @user"


def test_emoji_are_kept_by_every_step():
    cfg = CleanConfig(fix_unicode=True, html=True, normalize_urls=True, normalize_users=True)
    assert clean_text("I ❤️ flying @VirginAmerica. ☺️👍", cfg) == "I ❤️ flying @user. ☺️👍"
    assert cfg.describe() == "fix_unicode, html, normalize_urls, normalize_users, whitespace"

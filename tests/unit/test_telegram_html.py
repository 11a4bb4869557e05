"""The local server's HTML parse_mode: the same answers, offsets and errors as Telegram."""

from __future__ import annotations

import html
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.sandbox.telegram.html import (
    FormattedText,
    HtmlParseError,
    MessageEntity,
    parse_html,
    utf16_length,
)

# Tags that become one entity each, with no special merging rules.
SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    'span class="tg-spoiler"': "spoiler",
    "blockquote": "blockquote",
    "blockquote expandable": "expandable_blockquote",
}


def test_plain_text_and_entities_of_a_typical_bot_message() -> None:
    parsed = parse_html(
        '<b>Binance</b> key <code>ab…yz</code> is <i>read-only</i> &amp; <a href="https://x.io">ok</a>'
    )
    assert parsed.text == "Binance key ab…yz is read-only & ok"
    assert [(e.type, e.offset, e.length) for e in parsed.entities] == [
        ("bold", 0, 7),
        ("code", 12, 5),
        ("italic", 21, 9),
        ("text_link", 33, 2),
    ]
    assert parsed.entities[-1].url == "https://x.io"


def test_offsets_count_utf16_code_units() -> None:
    parsed = parse_html("📈 <b>BTC</b>")
    assert parsed.entities == (MessageEntity("bold", 3, 3),)


def test_character_references_are_decoded() -> None:
    assert parse_html("&lt;&gt;&amp;&quot;&#65;&#x42;&#x1F4B0;").text == '<>&"AB💰'


def test_pre_with_language_is_one_pre_entity() -> None:
    parsed = parse_html('<pre><code class="language-python">x = 1</code></pre>')
    assert parsed == FormattedText("x = 1", (MessageEntity("pre", 0, 5, language="python"),))


def test_inline_code_drops_its_language() -> None:
    assert parse_html('<code class="language-python">x</code>').entities == (
        MessageEntity("code", 0, 1),
    )


def test_tags_are_case_insensitive() -> None:
    assert parse_html("<B>x</B>").entities == (MessageEntity("bold", 0, 1),)


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("Hello <div>x</div>", 'Unsupported start tag "div" at byte offset 6'),
        ("Préf <br>", 'Unsupported start tag "br" at byte offset 6'),
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("text</b>", "Unexpected end tag at byte offset 4"),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("a <b", "Unclosed start tag at byte offset 2"),
        ("P&L", "Character entity expected at byte offset 1"),
        ("a&nbsp;b", "Character entity expected at byte offset 1"),
        (
            "<b x>y</b>",
            'Expected equal sign in declaration of an attribute of the tag "b" at byte offset 0',
        ),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ('<tg-emoji emoji-id="x">y</tg-emoji>', "Invalid custom emoji identifier specified"),
        ("<a href=x/>y</a>", "Unexpected end of name token at byte offset 8"),
    ],
)
def test_invalid_html_is_refused_with_telegrams_message(source: str, error: str) -> None:
    with pytest.raises(HtmlParseError) as refused:
        parse_html(source)
    assert str(refused.value) == error


@given(st.text())
def test_escaped_text_comes_back_unchanged(text: str) -> None:
    assert parse_html(html.escape(text)) == FormattedText(text)


@given(st.text(), st.sampled_from(sorted(SIMPLE_TAGS)))
def test_a_wrapped_text_is_exactly_covered_by_its_entity(text: str, tag: str) -> None:
    name = tag.split()[0]
    parsed = parse_html(f"<{tag}>{html.escape(text)}</{name}>")
    assert parsed.text == text
    expected = (MessageEntity(SIMPLE_TAGS[tag], 0, utf16_length(text)),) if text else ()
    assert parsed.entities == expected


@st.composite
def markup_trees(draw: st.DrawFn, depth: int = 3) -> tuple[str, str, list[tuple[str, int, int]]]:
    """(html, plain text, expected entities) for random nestings of supported tags."""
    if depth == 0 or draw(st.booleans()):
        text = draw(st.text(max_size=8))
        return html.escape(text), text, []
    children = [draw(markup_trees(depth=depth - 1)) for _ in range(draw(st.integers(1, 3)))]
    tag = draw(st.sampled_from(sorted(SIMPLE_TAGS)))
    source = "".join(child[0] for child in children)
    plain = ""
    entities: list[tuple[str, int, int]] = []
    for _, child_plain, child_entities in children:
        shift = utf16_length(plain)
        entities += [(kind, offset + shift, length) for kind, offset, length in child_entities]
        plain += child_plain
    if plain:
        entities.append((SIMPLE_TAGS[tag], 0, utf16_length(plain)))
    return f"<{tag}>{source}</{tag.split()[0]}>", plain, entities


@given(markup_trees())
def test_nested_markup_yields_the_text_and_every_span(
    tree: tuple[str, str, list[tuple[str, int, int]]],
) -> None:
    source, plain, expected = tree
    parsed = parse_html(source)
    assert parsed.text == plain
    assert sorted((e.type, e.offset, e.length) for e in parsed.entities) == sorted(expected)


@given(st.text(alphabet=string.printable + "é€📈<>&;#/=\"'", max_size=40))
def test_any_input_is_parsed_or_refused_never_crashes(source: str) -> None:
    try:
        parsed = parse_html(source)
    except HtmlParseError as error:
        message = str(error)
        if "byte offset " in message:
            offset = int(message.split("byte offset ")[1].split(",")[0])
            assert 0 <= offset < len(source.encode("utf-8"))
    else:
        assert utf16_length(parsed.text) <= utf16_length(source)
        for entity in parsed.entities:
            assert entity.offset >= 0
            assert entity.offset + entity.length <= utf16_length(parsed.text)


@given(st.text(), st.sampled_from(["div", "p", "br", "script", "h1"]))
def test_unsupported_tag_is_reported_at_its_utf8_byte_offset(prefix: str, tag: str) -> None:
    escaped = html.escape(prefix)
    with pytest.raises(HtmlParseError) as refused:
        parse_html(f"{escaped}<{tag}>")
    offset = len(escaped.encode("utf-8"))
    assert str(refused.value) == f'Unsupported start tag "{tag}" at byte offset {offset}'

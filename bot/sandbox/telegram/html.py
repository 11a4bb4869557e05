"""Telegram's HTML parse_mode: the real server's validation, error texts and plain-text result.

The parser follows tdlib's ``parse_html`` (td/telegram/MessageEntity.cpp) byte for byte, so error
messages and UTF-8 byte offsets match what the Bot API answers. One deliberate difference: an
``&`` that does not start a supported character reference (``&lt; &gt; &amp; &quot; &#NN;
&#xNN;``) is an error here, while Telegram shows it literally. Our bot must ``html.escape``
everything it interpolates; a stray ``&`` is how a forgotten escape shows up in tests before a
``<`` in user or exchange data breaks a message in production.

The sandbox reuses :func:`parse_html` to show messages as the user sees them (``.text``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_SPACE = frozenset(b" \t\r\n\0\v")  # tdlib's is_space; NUL also ends the C string
_NAME_TOKEN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
_NAMED_REFERENCES = {b"lt": ord("<"), b"gt": ord(">"), b"amp": ord("&"), b"quot": ord('"')}
SUPPORTED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_SIMPLE_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "u": "underline",
    "ins": "underline",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}


class HtmlParseError(ValueError):
    """Telegram would refuse this HTML; ``str()`` is the text after "can't parse entities: "."""


@dataclass(frozen=True)
class MessageEntity:
    """One formatting span of a message; offset and length count UTF-16 code units."""

    type: str
    offset: int
    length: int
    url: str | None = None
    language: str | None = None
    custom_emoji_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The Bot API ``MessageEntity`` object."""
        result: dict[str, Any] = {"type": self.type, "offset": self.offset, "length": self.length}
        for name in ("url", "language", "custom_emoji_id"):
            value = getattr(self, name)
            if value is not None:
                result[name] = value
        return result

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MessageEntity:
        """An entity the bot passed explicitly (``entities`` instead of ``parse_mode``)."""
        return cls(
            type=str(data.get("type", "")),
            offset=int(data.get("offset", 0)),
            length=int(data.get("length", 0)),
            url=data.get("url"),
            language=data.get("language"),
            custom_emoji_id=data.get("custom_emoji_id"),
        )


@dataclass(frozen=True)
class FormattedText:
    """Message text after entity parsing: what the user reads, plus the formatting spans."""

    text: str
    entities: tuple[MessageEntity, ...] = ()


def utf16_length(text: str) -> int:
    """Length the way Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


@dataclass
class _OpenTag:
    name: str
    argument: str
    utf16_offset: int
    result_offset: int


class _Parser:
    """One pass over the UTF-8 bytes, exactly like tdlib (indices are byte offsets)."""

    def __init__(self, source: str) -> None:
        self.data = source.encode("utf-8")
        self.pos = 0
        self.result = bytearray()
        self.utf16_offset = 0
        self.entities: list[MessageEntity] = []
        self.open_tags: list[_OpenTag] = []

    def at(self, index: int) -> int:
        """The byte at ``index``, or 0 past the end (tdlib reads the C string terminator)."""
        return self.data[index] if index < len(self.data) else 0

    def parse(self) -> FormattedText:
        while self.pos < len(self.data):
            byte = self.data[self.pos]
            if byte == ord("&"):
                self._character_reference()
            elif byte == ord("<"):
                if self.at(self.pos + 1) == ord("/"):
                    self._end_tag()
                else:
                    self._start_tag()
            else:
                self.result.append(byte)
                # count each character at its first byte; 4-byte ones are surrogate pairs
                if byte & 0xC0 != 0x80:
                    self.utf16_offset += 2 if byte >= 0xF0 else 1
                self.pos += 1
        if self.open_tags:
            raise HtmlParseError(
                f'Can\'t find end tag corresponding to start tag "{self.open_tags[-1].name}"'
            )
        # a language only survives on <pre>; inline code drops it
        entities = [
            MessageEntity("code", e.offset, e.length) if e.type == "code" else e
            for e in self.entities
        ]
        entities.sort(key=lambda e: (e.offset, -e.length, e.type))
        return FormattedText(self.result.decode("utf-8"), tuple(entities))

    def _decode_reference(self, pos: int) -> tuple[int, int] | None:
        """(code point, position after it) for a supported reference at ``pos``, else None."""
        end = pos + 1
        code = 0
        if self.at(end) == ord("#"):
            end += 1
            hexadecimal = self.at(end) == ord("x")
            if hexadecimal:
                end += 1
            digits = b"0123456789abcdefABCDEF" if hexadecimal else b"0123456789"
            while self.at(end) != 0 and self.at(end) in digits:
                code = code * (16 if hexadecimal else 10) + int(chr(self.at(end)), 16)
                end += 1
                if code >= 0x10FFFF:
                    return None
            if code == 0 or end - pos >= 10:
                return None
        else:
            while chr(self.at(end)).isascii() and chr(self.at(end)).isalpha():
                end += 1
            named = _NAMED_REFERENCES.get(self.data[pos + 1 : end])
            if named is None:
                return None
            code = named
        if self.at(end) == ord(";"):
            end += 1
        return code, end

    def _reference_or_fail(self, pos: int) -> tuple[int, int]:
        decoded = self._decode_reference(pos)
        if decoded is None:
            raise HtmlParseError(f"Character entity expected at byte offset {pos}")
        code, end = decoded
        if 0xD800 <= code <= 0xDFFF:
            raise HtmlParseError(
                "Text contains invalid Unicode characters after decoding HTML entities, "
                "check for unmatched surrogate code units"
            )
        return code, end

    def _character_reference(self) -> None:
        code, self.pos = self._reference_or_fail(self.pos)
        self.result += chr(code).encode("utf-8")
        self.utf16_offset += 2 if code > 0xFFFF else 1

    def _skip_spaces(self) -> None:
        while self.at(self.pos) != 0 and self.at(self.pos) in _SPACE:
            self.pos += 1

    def _start_tag(self) -> None:
        begin = self.pos
        self.pos += 1
        while self.at(self.pos) not in _SPACE and self.at(self.pos) != ord(">"):
            self.pos += 1
        if self.at(self.pos) == 0:
            raise HtmlParseError(f"Unclosed start tag at byte offset {begin}")
        tag = self.data[begin + 1 : self.pos].lower().decode("utf-8", "replace")
        if tag not in SUPPORTED_TAGS:
            raise HtmlParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')

        argument = ""
        while self.at(self.pos) != ord(">"):
            self._skip_spaces()
            if self.at(self.pos) == ord(">"):
                break
            name_begin = self.pos
            while self.at(self.pos) not in _SPACE and self.at(self.pos) not in b"=>":
                self.pos += 1
            name = self.data[name_begin : self.pos]
            if not name:
                raise HtmlParseError(
                    f'Empty attribute name in the tag "{tag}" at byte offset {begin}'
                )
            self._skip_spaces()
            if self.at(self.pos) != ord("="):
                if tag == "blockquote" and name == b"expandable":
                    argument = "expandable"
                    continue
                raise HtmlParseError(
                    "Expected equal sign in declaration of an attribute of the tag "
                    f'"{tag}" at byte offset {begin}'
                )
            self.pos += 1
            self._skip_spaces()
            if self.at(self.pos) == 0:
                raise HtmlParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
            value = self._attribute_value()
            if self.at(self.pos) == 0:
                raise HtmlParseError(f"Unclosed start tag at byte offset {begin}")
            argument = _tag_argument(tag, name, value, argument)

        if tag == "span" and argument != "spoiler":
            raise HtmlParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
        self.open_tags.append(_OpenTag(tag, argument, self.utf16_offset, len(self.result)))
        self.pos += 1

    def _attribute_value(self) -> str:
        quote = self.at(self.pos)
        if quote not in (ord('"'), ord("'")):
            # an unquoted name token: letters, digits, periods, hyphens; case-insensitive
            token_begin = self.pos
            while self.at(self.pos) != 0 and self.at(self.pos) in _NAME_TOKEN:
                self.pos += 1
            if self.at(self.pos) not in _SPACE and self.at(self.pos) != ord(">"):
                raise HtmlParseError(f"Unexpected end of name token at byte offset {token_begin}")
            return self.data[token_begin : self.pos].lower().decode("utf-8")
        self.pos += 1
        value = bytearray()
        while self.at(self.pos) != quote and self.at(self.pos) != 0:
            if self.at(self.pos) == ord("&"):
                code, self.pos = self._reference_or_fail(self.pos)
                value += chr(code).encode("utf-8")
                continue
            value.append(self.at(self.pos))
            self.pos += 1
        if self.at(self.pos) == quote:
            self.pos += 1
        return value.decode("utf-8", "replace")

    def _end_tag(self) -> None:
        begin = self.pos
        if not self.open_tags:
            raise HtmlParseError(f"Unexpected end tag at byte offset {begin}")
        self.pos += 1
        while self.at(self.pos) not in _SPACE and self.at(self.pos) != ord(">"):
            self.pos += 1
        end_name = self.data[begin + 2 : self.pos].lower().decode("utf-8", "replace")
        while self.at(self.pos) != 0 and self.at(self.pos) in _SPACE:
            self.pos += 1
        if self.at(self.pos) != ord(">"):
            raise HtmlParseError(f"Unclosed end tag at byte offset {begin}")
        open_tag = self.open_tags[-1]
        if end_name and end_name != open_tag.name:
            raise HtmlParseError(
                f'Unmatched end tag at byte offset {begin}, expected "</{open_tag.name}>", '
                f'found "</{end_name}>"'
            )
        if self.utf16_offset > open_tag.utf16_offset:
            self._add_entity(open_tag)
        self.open_tags.pop()
        self.pos += 1

    def _add_entity(self, tag: _OpenTag) -> None:
        offset = tag.utf16_offset
        length = self.utf16_offset - offset
        last = self.entities[-1] if self.entities else None
        same_span = last is not None and last.offset == offset and last.length == length
        if tag.name in _SIMPLE_ENTITY_TYPES:
            self.entities.append(MessageEntity(_SIMPLE_ENTITY_TYPES[tag.name], offset, length))
        elif tag.name == "blockquote":
            kind = "expandable_blockquote" if tag.argument else "blockquote"
            self.entities.append(MessageEntity(kind, offset, length))
        elif tag.name == "tg-emoji":
            if not tag.argument.isdigit() or int(tag.argument) == 0:
                raise HtmlParseError("Invalid custom emoji identifier specified")
            self.entities.append(
                MessageEntity("custom_emoji", offset, length, custom_emoji_id=tag.argument)
            )
        elif tag.name == "a":
            url = tag.argument or self.result[tag.result_offset :].decode("utf-8")
            url = url.strip()
            if url:
                if "://" not in url and not url.startswith("tg:"):
                    url = "http://" + url
                self.entities.append(MessageEntity("text_link", offset, length, url=url))
        elif tag.name == "code":
            if same_span and last is not None and last.type == "pre" and tag.argument:
                # <pre><code class="language-x">…</code></pre> is one pre block with a language
                self.entities[-1] = MessageEntity("pre", offset, length, language=tag.argument)
            else:
                code = MessageEntity("code", offset, length, language=tag.argument or None)
                self.entities.append(code)
        elif same_span and last is not None and last.type == "code" and last.language:
            self.entities[-1] = MessageEntity("pre", offset, length, language=last.language)
        else:  # pre
            self.entities.append(MessageEntity("pre", offset, length))


def _tag_argument(tag: str, attribute: bytes, value: str, current: str) -> str:
    """The one attribute each tag cares about; tdlib ignores every other attribute."""
    if tag == "a" and attribute == b"href":
        return value
    if tag == "code" and attribute == b"class" and value.startswith("language-"):
        return value.removeprefix("language-")
    if tag == "span" and attribute == b"class" and value.startswith("tg-"):
        return value.removeprefix("tg-")
    if tag == "tg-emoji" and attribute == b"emoji-id":
        return value
    if tag == "blockquote" and attribute == b"expandable":
        return "expandable"
    return current


def parse_html(source: str) -> FormattedText:
    """Parse ``parse_mode=HTML`` text like Telegram; raises :class:`HtmlParseError`."""
    return _Parser(source).parse()

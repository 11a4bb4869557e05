"""What we accept from a paste: stripped, bounded, and refused with a reason otherwise."""

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given
from hypothesis import strategies as st

from bot.exchanges.key_input import (
    InputProblem,
    bare_command,
    clean_api_key,
    clean_label,
    clean_secret,
    looks_like_secret,
)


def test_whitespace_and_line_breaks_around_a_paste_are_stripped() -> None:
    assert clean_api_key("  \n abcdEFGH12345678 \n\t") == "abcdEFGH12345678"
    assert clean_secret("\nsecretSECRET987654\n") == "secretSECRET987654"


@pytest.mark.parametrize("bad", ["", "   ", "two words here", "short", "x" * 300, "ключ12345678"])
def test_bad_api_keys_are_refused(bad: str) -> None:
    with pytest.raises(InputProblem):
        clean_api_key(bad)


def test_labels_keep_html_and_emoji_but_not_control_characters() -> None:
    assert clean_label("  <b>Main</b> & 🚀  ") == "<b>Main</b> & 🚀"
    with pytest.raises(InputProblem):
        clean_label("bad\u200elabel")
    with pytest.raises(InputProblem):
        clean_label("x" * 33)


@given(st.text(max_size=200))
def test_clean_label_never_crashes_and_bounds_its_output(text: str) -> None:
    try:
        label = clean_label(text)
    except InputProblem:
        return
    assert 0 < len(label) <= 32 and label == label.strip()


@given(st.text(max_size=400))
def test_clean_api_key_output_is_printable_ascii(text: str) -> None:
    try:
        key = clean_api_key(text)
    except InputProblem:
        return
    assert key.isascii() and " " not in key and 8 <= len(key) <= 256


def test_looks_like_secret() -> None:
    assert looks_like_secret("vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A")
    assert not looks_like_secret("hello everyone, what do you think about BTC today?")


def _pem(key: object) -> str:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


@pytest.mark.parametrize(
    "paste",
    [
        lambda pem: pem,
        lambda pem: f"  \n{pem}\n  ",
        lambda pem: '"' + pem.replace("\n", "\\n") + '"',  # from the JSON key file
        lambda pem: pem.replace("\n", " "),  # line breaks lost on the way
    ],
)
def test_a_pasted_ec_private_key_is_normalised(paste: object) -> None:
    pem = _pem(ec.generate_private_key(ec.SECP256R1()))
    assert clean_secret(paste(pem)) == pem  # type: ignore[operator]


def test_damaged_or_non_p256_private_keys_are_refused() -> None:
    with pytest.raises(InputProblem, match="damaged"):
        clean_secret("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----")
    with pytest.raises(InputProblem, match="whole private key"):
        clean_secret("-----BEGIN EC PRIVATE KEY----- truncated")
    other = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InputProblem, match="ECDSA"):
        clean_secret(other.decode())


BOT = "coinwarden_test_bot"
FLOW = {"cancel", "connect", "rotate", "start", "help"}


@pytest.mark.parametrize(
    "text", ["/cancel", "/CANCEL", " /Cancel\n", f"/cancel@{BOT}", f"/cancel@{BOT.upper()}"]
)
def test_a_bare_command_is_the_whole_message(text: str) -> None:
    assert bare_command(text, BOT) == "cancel"


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("/cancelAbc0123+xyz", None),  # "+": more than a command word
        ("/cancelAbc0123xyz", "cancelabc0123xyz"),  # a word, but no command of ours
        ("/start+abc=", None),
        ("/rotate/Y6uIk", None),
        ("/cancel now", None),
        ("/cancel@another_bot", None),
        ("/cancel@", None),
        ("//cancel", None),
        ("cancel", None),
        ("", None),
    ],
)
def test_anything_more_than_a_bare_command_is_not_one(text: str, name: str | None) -> None:
    assert bare_command(text, BOT) == name


def test_without_a_known_bot_name_no_addressed_form_is_ours() -> None:
    assert bare_command("/cancel@coinwarden_test_bot", None) is None
    assert bare_command("/cancel", None) == "cancel"


@given(st.binary(min_size=7, max_size=96))
def test_no_base64_key_or_secret_is_a_flow_command(raw: bytes) -> None:
    """A base64 value of 7 bytes or more has at least 12 characters: never "/connect"."""
    encoded = base64.b64encode(raw).decode()
    assert bare_command(encoded, BOT) not in FLOW
    assert bare_command(encoded.rstrip("="), BOT) not in FLOW


@given(st.text(max_size=40))
def test_a_flow_command_is_only_ever_the_bare_command(text: str) -> None:
    name = bare_command(text, BOT)
    if name in FLOW:
        assert text.strip().lower() in {f"/{name}", f"/{name}@{BOT}"}


def test_a_key_that_starts_with_a_slash_still_looks_like_a_secret() -> None:
    assert looks_like_secret("/Y6uIk+v0Yb2mPc9xQ3rT7wL1nZ8sK4dF6hJ0aE5gR2tU9yB3cV7")
    assert looks_like_secret("/cancel+Xy0Yb2mPc9xQ3rT7wL1nZ8sK4dF6hJ0aE5gR2tU9yB3cV7==")

"""What we accept as a connection label, API key, secret or passphrase.

Pasted values arrive with stray spaces and line breaks; those are stripped. Anything else odd is
refused with a reason the user can act on (``InputProblem``), and nothing is stored.
"""

from __future__ import annotations

import re
import unicodedata

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

LABEL_MAX = 32
API_KEY_MAX = 256
SECRET_MAX = 4096  # room for a PEM private key (Coinbase CDP keys)
PASSPHRASE_MAX = 128
MIN_CREDENTIAL = 8


class InputProblem(ValueError):
    """A friendly explanation of why the input was refused."""


def clean_label(text: str) -> str:
    label = " ".join(text.split())
    if not label:
        raise InputProblem("A label cannot be empty. Send a short name such as Main.")
    if len(label) > LABEL_MAX:
        raise InputProblem(f"That label is too long: keep it to {LABEL_MAX} characters or fewer.")
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"} for ch in label):
        raise InputProblem("That label has invisible control characters. Send plain text.")
    return label


_CREDENTIAL = re.compile(r"^[\x21-\x7e]+$")


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def clean_credential(text: str, what: str, *, max_length: int) -> str:
    """Strip what a paste adds around a value; refuse inner whitespace and non-ASCII."""
    value = text.strip()
    a = _article(what)
    if not value:
        raise InputProblem(f"That {what} is empty. Paste it again.")
    if len(value) > max_length:
        raise InputProblem(
            f"That is too long for {a} {what} ({len(value)} characters). Paste only the {what}."
        )
    if not _CREDENTIAL.match(value):
        raise InputProblem(
            f"{a.capitalize()} {what} has no spaces, line breaks or special characters. "
            f"Paste only the {what}."
        )
    if len(value) < MIN_CREDENTIAL:
        raise InputProblem(f"That is too short for {a} {what}. Paste the whole {what}.")
    return value


def clean_api_key(text: str) -> str:
    return clean_credential(text, "API key", max_length=API_KEY_MAX)


def clean_secret(text: str) -> str:
    if "PRIVATE KEY-----" in text:
        return clean_pem_secret(text)
    return clean_credential(text, "secret", max_length=SECRET_MAX)


_PEM = re.compile(
    r"-----BEGIN (EC )?PRIVATE KEY-----(?P<body>.*?)-----END (EC )?PRIVATE KEY-----", re.DOTALL
)
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


def clean_pem_secret(text: str) -> str:
    """Normalise a pasted PEM private key (Coinbase CDP keys) and prove it is ECDSA P-256.

    Pastes arrive with stray spaces, quotes from the JSON key file, literal ``\\n`` escapes, or
    line breaks turned into spaces; the key is rebuilt in canonical 64-character lines.
    """
    if len(text) > SECRET_MAX:
        raise InputProblem("That is too long for a private key. Paste only the key.")
    value = text.strip().strip('"').replace("\\r\\n", "\n").replace("\\n", "\n")
    match = _PEM.search(value)
    if match is None:
        raise InputProblem(
            "Paste the whole private key, from -----BEGIN … to -----END … PRIVATE KEY-----."
        )
    body = "".join(match.group("body").split())
    if not _BASE64.match(body):
        raise InputProblem("That private key is damaged. Copy it again from the key file.")
    kind = "EC PRIVATE KEY" if match.group(1) else "PRIVATE KEY"
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    pem = "\n".join([f"-----BEGIN {kind}-----", *lines, f"-----END {kind}-----", ""])
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise InputProblem(
            "That private key is damaged. Copy it again from the key file."
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise InputProblem(
            "That is not an ECDSA (P-256) key: create the API key with the ECDSA algorithm."
        )
    return pem


def clean_passphrase(text: str) -> str:
    value = text.strip()
    if not value or len(value) > PASSPHRASE_MAX:
        raise InputProblem(f"A passphrase has 1 to {PASSPHRASE_MAX} characters. Paste it again.")
    return value


_SECRET_LIKE = re.compile(r"^[A-Za-z0-9+/=_\-]{24,}$")


def looks_like_secret(text: str) -> bool:
    """A single long token of key-ish characters with letters and digits: probably a key."""
    value = text.strip()
    return (
        bool(
            _SECRET_LIKE.match(value)
            and any(ch.isdigit() for ch in value)
            and any(ch.isalpha() for ch in value)
        )
        or "PRIVATE KEY-----" in value
    )


_BARE_COMMAND = re.compile(r"/(?P<name>[A-Za-z0-9_]{1,64})(?:@(?P<bot>[A-Za-z0-9_]{1,64}))?")


def bare_command(text: str, bot_username: str | None) -> str | None:
    """The command's name (lower case) when the whole message is one command and nothing else.

    That is ``/name`` or ``/name@<bot_username>``, in any case, around which only whitespace is
    ignored. Anything more is not a command here: ``/cancel now``, ``/cancel+Xy…``,
    ``/start+abc=``, or a command addressed to another bot. ``/cancelXyz…`` gives ``cancelxyz``,
    which is no command of ours. A key step uses this to tell its few commands from input: base64
    keys and secrets start with "/" one time in 64, and Telegram marks them as commands.
    """
    match = _BARE_COMMAND.fullmatch(text.strip())
    if match is None:
        return None
    to = match.group("bot")
    if to is not None and (bot_username is None or to.lower() != bot_username.lower()):
        return None
    return match.group("name").lower()

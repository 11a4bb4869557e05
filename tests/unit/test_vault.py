"""The vault: AES-256-GCM with associated data binding each value to its place."""

import pytest

from storage.vault import (
    Binding,
    Vault,
    VaultError,
    generate_master_key,
    key_id,
    parse_master_key,
    token_key_id,
)

HERE = Binding(chat_id=1001, connection_id=7, field="read_secret")


def new_vault() -> Vault:
    return Vault(parse_master_key(generate_master_key()))


def test_round_trip_and_token_format() -> None:
    vault = new_vault()
    token = vault.encrypt("s3cret-value", HERE)
    version, kid, nonce, ciphertext = token.split(".")
    assert version == "v1" and kid == vault.current_key_id and nonce and ciphertext
    assert "s3cret-value" not in token
    assert vault.decrypt(token, HERE) == "s3cret-value"


def test_every_encryption_uses_a_fresh_nonce() -> None:
    vault = new_vault()
    tokens = {vault.encrypt("same", HERE) for _ in range(50)}
    assert len(tokens) == 50
    assert len({t.split(".")[2] for t in tokens}) == 50


@pytest.mark.parametrize(
    "elsewhere",
    [
        Binding(1002, 7, "read_secret"),  # another chat
        Binding(1001, 8, "read_secret"),  # another connection
        Binding(1001, 7, "read_api_key"),  # another column
    ],
)
def test_a_swapped_ciphertext_fails_loudly(elsewhere: Binding) -> None:
    vault = new_vault()
    token = vault.encrypt("s3cret-value", HERE)
    with pytest.raises(VaultError):
        vault.decrypt(token, elsewhere)


def test_an_edited_ciphertext_fails_loudly() -> None:
    vault = new_vault()
    version, kid, nonce, ciphertext = vault.encrypt("s3cret-value", HERE).split(".")
    flipped = ("A" if ciphertext[0] != "A" else "B") + ciphertext[1:]
    for token in (
        f"{version}.{kid}.{nonce}.{flipped}",
        f"{version}.{kid}.{nonce}.{ciphertext[:-2]}",
    ):
        with pytest.raises(VaultError):
            vault.decrypt(token, HERE)


def test_another_key_cannot_decrypt() -> None:
    token = new_vault().encrypt("s3cret-value", HERE)
    with pytest.raises(VaultError, match="not configured"):
        new_vault().decrypt(token, HERE)


def test_previous_keys_decrypt_but_never_encrypt() -> None:
    old, new = parse_master_key(generate_master_key()), parse_master_key(generate_master_key())
    token = Vault(old).encrypt("s3cret-value", HERE)
    rotated = Vault(new, previous=[old])
    assert rotated.decrypt(token, HERE) == "s3cret-value"
    assert token_key_id(rotated.encrypt("x", HERE)) == key_id(new)


@pytest.mark.parametrize("bad", ["", "not base64!", "c2hvcnQ=", "A" * 100])
def test_master_keys_must_be_32_bytes_of_base64(bad: str) -> None:
    with pytest.raises(ValueError, match="32"):
        parse_master_key(bad)


def test_garbage_tokens_are_refused() -> None:
    with pytest.raises(VaultError):
        new_vault().decrypt("plain-text-secret", HERE)

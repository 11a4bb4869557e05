"""Key fingerprints tell a user's keys apart: first 4 … last 4 of what differs between them."""

from __future__ import annotations

from storage.credentials import mask


def test_a_plain_key_shows_its_ends() -> None:
    assert mask("vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A") == "vmPU…Eh8A"


def test_a_coinbase_key_name_shows_its_key_id_not_the_common_organization_prefix() -> None:
    name = "organizations/7a1c2e9f-0000-4000-8000-123456789abc/apiKeys/d0f1e2c3-4b5a-6978-8a9b"
    assert mask(name) == "d0f1…8a9b"
    other = "organizations/7a1c2e9f-0000-4000-8000-123456789abc/apiKeys/aa11bb22-cc33-dd44-ee55"
    assert mask(other) != mask(name)


def test_a_short_value_shows_almost_nothing() -> None:
    assert mask("abc123") == "ab…"

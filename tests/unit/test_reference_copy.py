"""The reference data shipped in the package is a byte-exact copy of ``shared/reference``."""

from pathlib import Path

PACKAGED = Path(__file__).resolve().parents[2] / "bot" / "sandbox" / "reference"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "reference"


def test_the_packaged_copy_matches_shared_reference() -> None:
    copied = [p for p in PACKAGED.rglob("*") if p.is_file() and p.name != "README.md"]
    assert len(copied) > 10
    for path in copied:
        original = SHARED / path.relative_to(PACKAGED)
        assert original.read_bytes() == path.read_bytes(), f"{path} differs from {original}"

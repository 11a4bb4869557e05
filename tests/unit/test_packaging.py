"""How the project installs: an SPDX license (no deprecation banner per install), and the
sandbox and run targets install the bot's runtime only, while test and lint keep the dev tools."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def test_the_license_is_an_spdx_expression_on_a_setuptools_that_reads_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "MIT"
    assert "setuptools>=77" in project["build-system"]["requires"]  # PEP 639 from 77 on
    classifiers = project["project"].get("classifiers", [])
    assert not [c for c in classifiers if c.startswith("License ::")]  # refused with SPDX


def planned(target: str) -> str:
    """The commands ``make <target>`` runs from scratch, printed and not run (``-n -B``)."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    done = subprocess.run(
        [make, "-C", str(ROOT), "-n", "-B", target], capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.mark.parametrize("target", ["sandbox", "run"])
def test_sandbox_and_run_install_the_runtime_only(target: str) -> None:
    commands = planned(target)
    assert "pip install --quiet -e .\n" in commands
    assert "[dev]" not in commands


@pytest.mark.parametrize("target", ["test", "lint"])
def test_test_and_lint_still_install_the_dev_tools(target: str) -> None:
    assert "pip install --quiet -e '.[dev]'" in planned(target)

"""The README tells the truth: its sandbox example works as typed, and every command has a row."""

from __future__ import annotations

import re
from pathlib import Path

from bot.handlers.commands import NAMES
from bot.sandbox.terminal import Mistake, Press, parse_line

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


def sandbox_example() -> list[str]:
    """The lines of the terminal session under "Try it without Telegram"."""
    section = README.split("## Try it without Telegram", 1)[1]
    block = re.search(r"```text\n(.*?)```", section, re.DOTALL)
    assert block is not None
    return block.group(1).splitlines()


def test_the_sandbox_example_presses_buttons_by_label_and_knows_every_command() -> None:
    terminal_words = [
        word
        for line in sandbox_example()
        for word in re.findall(r"(?:^|\s)(:\S+(?: [A-Z][a-z]+)?)", line)
    ]
    assert terminal_words
    for word in terminal_words:
        command = parse_line(word)
        # Button numbers change with every message; a label always finds its button.
        assert not (isinstance(command, Press) and command.number is not None), word
        unknown = isinstance(command, Mistake) and "unknown command" in command.message
        assert not unknown, word


def test_every_command_has_a_row_in_the_readme() -> None:
    for name in NAMES:
        assert f"`/{name}" in README, name

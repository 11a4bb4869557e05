"""The command list: one source for setMyCommands and /help."""

from __future__ import annotations

import difflib

from telegram import BotCommand

COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", "What Coinwarden does and how it keeps your keys safe"),
    ("connect", "Connect an exchange account with an API key"),
    ("connections", "Your connected accounts and their status"),
    ("rename", "Give a connection another label: /rename Main Long-term"),
    ("balance", "A connection's balances, valued: /balance [label]"),
    ("portfolio", "All your accounts together, with changes and a chart"),
    ("alert", "Tell me when a balance crosses a line: /alert Main BTC below 0.5"),
    ("alerts", "Your alerts, with pause and delete"),
    ("rebalance", "Target allocation and proposals you approve: /rebalance all BTC 50 USDT 50"),
    ("orders", "Open orders of a connection: /orders [label]"),
    ("trades", "The last 20 fills of a connection: /trades [label]"),
    ("positions", "Futures positions of a connection: /positions [label]"),
    ("settings", "Currency, dust threshold, how often balances are read"),
    ("check", "Diagnose a connection step by step: /check [label]"),
    ("log", "The last exchange calls of a connection: /log [label]"),
    ("rotate", "Replace a connection's read or trade key: /rotate [label]"),
    ("revoke", "Disconnect an account and wipe its keys: /revoke [label]"),
    ("pause", "Stop all automated trading in this chat at once (alerts keep running)"),
    ("resume", "Let automated trading act again after /pause"),
    ("cancel", "Stop what you are doing; nothing half-entered is kept"),
    ("help", "All commands"),
)


NAMES = tuple(name for name, _ in COMMANDS)
#: What traders type from other bots' habits; spelling alone would point elsewhere (status → start).
ALIASES = {"status": "connections", "stop": "pause", "disconnect": "revoke"}


def closest_command(name: str) -> str | None:
    """The real command a mistyped or unknown one most likely meant; None when none is close."""
    wanted = name.lower()
    if wanted in ALIASES:
        return ALIASES[wanted]
    found = difflib.get_close_matches(wanted, NAMES, n=1, cutoff=0.6)
    return found[0] if found else None


def bot_commands() -> list[BotCommand]:
    return [BotCommand(name, description) for name, description in COMMANDS]


def help_text() -> str:
    lines = ["<b>Commands</b>"]
    lines += [f"/{name} — {description}" for name, description in COMMANDS]
    lines += [
        "",
        "Keys are accepted only in this private chat. Messages that carry a key or secret are "
        "deleted at once, and keys that can withdraw are refused.",
    ]
    return "\n".join(lines)

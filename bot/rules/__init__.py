"""Scheduled work and the rules it enforces: sweeps, venue budgets, reminders, the trading gate.

No Telegram imports: sweeps change the database and queue notices in the outbox; the Telegram
layer delivers them.
"""

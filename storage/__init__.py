"""Persistence: database engine and migrations, repositories, and the vault that encrypts secrets.

Nothing here imports telegram or ccxt.
"""

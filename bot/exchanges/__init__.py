"""Exchange side of Coinwarden: venue catalogue, ccxt clients, key checks, diagnosis.

Nothing in this package imports telegram; it is tested directly.
"""

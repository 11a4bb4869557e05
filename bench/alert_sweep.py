"""Alert rules at scale: 2,000 connections with 5 rules each (10,000 rules) through the local
venue servers. The sweep benchmark (``sweep_calls.py``) with ``--alerts``: signed calls per
connection per sweep must stay 1.00, the rule evaluation must take ≤ 50 ms of CPU per sweep,
and a BTC price drop that crosses 10 % of the rules must queue exactly one alert per crossed
rule (and none before it). Prints one JSON object; exits 1 if a goal is missed.

    .venv/bin/python bench/alert_sweep.py
"""

import sys

from sweep_calls import main

if __name__ == "__main__":
    main(["--alerts", *sys.argv[1:]])

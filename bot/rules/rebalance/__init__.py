"""Rebalancing: targets, drift triggers, the planner, proposals and the crash-safe executor."""

"""Coordinator: Flower ServerApp, adapter aggregation, run state, release catalog."""

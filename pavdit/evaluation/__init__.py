"""Metrics (registered in ``METRICS``) and feature networks for evaluation."""

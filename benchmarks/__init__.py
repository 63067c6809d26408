"""Benchmarks: scripts that print numbers (run from the checkout: python -m benchmarks.X)."""

"""Training, evaluation and benchmark tools (run from the checkout: python -m training.X)."""

"""Training and evaluation of the classifier, data loading and metrics (python -m training.X)."""

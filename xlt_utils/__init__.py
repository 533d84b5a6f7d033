"""xlt_utils: the package behind the xlt notebooks (First Align, then Predict)."""

__version__ = "0.1.0"

"""The package's version, in the lowest layer so that any module can record it (metrics.json, model cards)."""

__version__ = "0.1.0"

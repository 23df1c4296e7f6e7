"""Data sets: on-disk layouts, pre-flight scans, the feature store and built-in synthetic data."""

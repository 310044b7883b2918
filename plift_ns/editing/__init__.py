"""plift-ns editing."""

"""plift-ns models."""

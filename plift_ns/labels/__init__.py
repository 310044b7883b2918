"""plift-ns labels."""

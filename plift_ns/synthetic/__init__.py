"""plift-ns synthetic."""

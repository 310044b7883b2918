"""plift-ns eval."""

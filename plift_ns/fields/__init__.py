"""plift-ns fields."""

"""Benchmarks: speed beside nerfstudio peers, and label quality before/after lifting."""

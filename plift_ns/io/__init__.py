"""Shared input/output helpers (atomic writes of result files and folders)."""

"""Importers from public dataset layouts to the plift-ns data contract."""

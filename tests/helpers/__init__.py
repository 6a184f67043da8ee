"""Importable test helpers (``from tests.helpers.tiny_run import tiny_overrides``); fixtures stay in tests/conftest.py."""

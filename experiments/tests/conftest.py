"""The tiny backbone and data fixtures of tests/conftest.py, for the experiment tests."""

from tests.conftest import tiny_backbone, tiny_data  # noqa: F401

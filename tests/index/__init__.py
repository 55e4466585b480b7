"""Tests of ``shared.index``."""

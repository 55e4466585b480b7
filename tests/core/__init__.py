"""Tests of ``shared.core``."""

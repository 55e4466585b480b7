"""Tests of ``shared.sync``."""

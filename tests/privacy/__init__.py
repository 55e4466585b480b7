"""Tests of ``shared.privacy``."""

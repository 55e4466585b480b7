"""Tests of ``shared.mail``."""

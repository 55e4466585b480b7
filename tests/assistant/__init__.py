"""Tests of ``shared.assistant``."""

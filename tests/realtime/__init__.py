"""Tests of ``shared.realtime``."""

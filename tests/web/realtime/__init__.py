"""Tests of ``web.realtime``."""

"""Tests of ``web``."""

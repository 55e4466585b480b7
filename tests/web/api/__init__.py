"""Tests of ``web.api``."""

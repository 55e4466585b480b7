"""Tests of ``devtools``."""

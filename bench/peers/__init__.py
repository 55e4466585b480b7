"""Peers measured beside Mailchat in ``make bench`` (small apps the benchmarks start)."""

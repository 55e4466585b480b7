"""Plumbing every domain uses: settings, clients, Redis key names, locks, metrics, task names, rate limits. Imports no other shared package."""

"""Mailchat's domain code, one package per domain; imports neither Flask nor Celery.

Dependencies point one way: ``core`` imports no other package here; ``mail`` and
``identity`` import only ``core``; ``index`` imports ``core`` and ``mail``;
``realtime`` imports ``core``; ``assistant`` imports ``core``, ``index`` and
``realtime``; ``sync`` imports ``core``, ``mail``, ``index`` and ``realtime``;
``privacy`` may import all of them (it deletes what they store).
"""

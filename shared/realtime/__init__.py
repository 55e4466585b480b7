"""Per-conversation and per-user event logs on Redis Streams, delivery with its outbox, and conversation ownership. Imports only ``shared.core``."""

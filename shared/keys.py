"""Every Redis key Mailchat writes, built in one place.

Keys all start with the settings' ``key_prefix`` so one Redis can serve
several installations (and tests can isolate themselves by prefix).
"""

from __future__ import annotations


class RedisKeys:
    """Builds Redis key names from a prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def user(self, user_id: str) -> str:
        """Hash: email, password_hash, created_at."""
        return f"{self.prefix}user:{user_id}"

    def user_by_email(self, email: str) -> str:
        """String: the user id owning a (lowercased) email address."""
        return f"{self.prefix}user-email:{email.lower()}"

    def conversation_owner(self, conversation_id: str) -> str:
        """String: the user id that owns a conversation, so nobody else can post into it."""
        return f"{self.prefix}conversation-owner:{conversation_id}"

    def user_conversations(self, user_id: str) -> str:
        """Sorted set: the user's conversation ids, scored by last activity (unix seconds)."""
        return f"{self.prefix}user-conversations:{user_id}"

    def conversation_events(self, conversation_id: str) -> str:
        """Stream: a conversation's event log (question, search, hits, deltas, done)."""
        return f"{self.prefix}events:conversation:{conversation_id}"

    def user_events(self, user_id: str) -> str:
        """Stream: a user's notification log (sync progress, new mail)."""
        return f"{self.prefix}events:user:{user_id}"

    def stream_epoch(self, stream_key: str) -> str:
        """String: a stream's epoch, set once; a changed epoch tells clients to refetch."""
        return f"{stream_key}:epoch"

    def dedup(self, stream_key: str, dedup_key: str) -> str:
        """String: the entry id already written for a dedup key, so retries never double."""
        return f"{stream_key}:dedup:{dedup_key}"

    def doorbell_channel(self) -> str:
        """Pub/sub channel: messages are stream keys that just got an entry."""
        return f"{self.prefix}doorbell"

    def dead_letters(self) -> str:
        """Stream: deliveries that failed their last retry, with the reason."""
        return f"{self.prefix}dead-letters:delivery"

    def import_lock(self, user_id: str) -> str:
        """Lock held while one mailbox import runs for a user."""
        return f"{self.prefix}lock:import:{user_id}"

    def demo_imported(self) -> str:
        """Flag set once the demo mailbox has been imported."""
        return f"{self.prefix}demo:imported"

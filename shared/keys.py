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

    def import_lock(self, user_id: str) -> str:
        """Lock held while one mailbox import runs for a user."""
        return f"{self.prefix}lock:import:{user_id}"

    def demo_imported(self) -> str:
        """Flag set once the demo mailbox has been imported."""
        return f"{self.prefix}demo:imported"

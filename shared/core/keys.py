"""Every Redis key Mailchat writes, built in one place.

Keys all start with the settings' ``key_prefix`` so one Redis can serve
several installations (and tests can isolate themselves by prefix).
"""

from __future__ import annotations

# Kombu's Redis transport keeps the messages a worker has taken but not yet acknowledged in
# "unacked" (hash), "unacked_index" (sorted set, by delivery time) and "unacked_mutex", shared
# by every consumer of the Redis db and unprefixed, like the queues themselves. Each consumer
# puts back what has been there longer than *its* visibility timeout. Workers on the short
# queues keep theirs under these names instead, so their short timeout can never put back a
# sync task another worker is an hour into (celery_app.broker_transport_options).
SHORT_LEASE_BROKER_KEYS = {
    "unacked_key": "unacked-short",
    "unacked_index_key": "unacked-short_index",
    "unacked_mutex_key": "unacked-short_mutex",
}


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

    def active_question(self, conversation_id: str) -> str:
        """String: the client message id being answered; a newer question replaces it (cancel)."""
        return f"{self.prefix}active-question:{conversation_id}"

    def answer_draft(self, stream_key: str, answer_ref: str) -> str:
        """String (JSON): an answer computed once, so a retried task emits that same answer.

        Below the conversation's stream key, so delete-my-data removes it with the stream.
        """
        return f"{stream_key}:draft:{answer_ref}"

    def answer_attempt(self, stream_key: str, client_message_id: str) -> str:
        """String: the current attempt of a question re-asked after a retryable error."""
        return f"{stream_key}:attempt:{client_message_id}"

    def open_questions(self) -> str:
        """Sorted set: ``open_question_member`` -> the question's deadline (unix seconds),
        until its ``done`` or ``error`` is written; beat ends overdue ones."""
        return f"{self.prefix}open-questions"

    @staticmethod
    def open_question_member(conversation_id: str, client_message_id: str, attempt: int = 0) -> str:
        """A question (attempt) in ``open_questions``: ``<conversation>:<id>[:<attempt>]``;
        ``<conversation id>:*`` matches a conversation's."""
        base = f"{conversation_id}:{client_message_id}"
        return base if attempt == 0 else f"{base}:{attempt}"

    def client_message_conversation(self, user_id: str, client_message_id: str) -> str:
        """String: the conversation a client message id (asked without one) went into, so a
        repeat returns the first answer instead of opening a second conversation."""
        return f"{self.prefix}client-message:{user_id}:{client_message_id}"

    def client_messages_of(self, user_id: str) -> str:
        """Prefix of every client-message key of one user (for SCAN on delete)."""
        return f"{self.prefix}client-message:{user_id}:"

    def chat_ticket(self, ticket: str) -> str:
        """String: the user id a single-use SSE ticket was issued to (60 s)."""
        return f"{self.prefix}chat-ticket:{ticket}"

    def rate_limit_prefix(self) -> str:
        """Prefix of the rate-limit counters the ``limits`` package (and Flask-Limiter) keep.

        Their names carry the subject (a user id or an IP address) and expire on their own.
        """
        return f"{self.prefix}rate"

    def session(self, user_id: str, session_id: str) -> str:
        """Hash: one login session (refresh-token family): created_at, expires_at, generation.

        Named by the user id, so delete-my-data and a password change find every one; expires
        at the session's absolute end on its own.
        """
        return f"{self.prefix}session:{user_id}:{session_id}"

    def sessions_of(self, user_id: str) -> str:
        """Prefix of every session key of one user (for SCAN)."""
        return f"{self.prefix}session:{user_id}:"

    def login_failures(self, kind: str, subject_digest: str) -> str:
        """Hash: failed logins of one account or IP (a digest, never the email): count, until."""
        return f"{self.prefix}login-failures:{kind}:{subject_digest}"

    def user_sockets(self, user_id: str) -> str:
        """Sorted set: the user's open WebSockets, scored by when their claim lapses."""
        return f"{self.prefix}user-sockets:{user_id}"

    def web_instances(self) -> str:
        """Sorted set: live web processes, scored by their last heartbeat (unix seconds)."""
        return f"{self.prefix}web-instances"

    def readyz_probe(self, instance: str) -> str:
        """String written and read back by one instance's /readyz (expires in seconds)."""
        return f"{self.prefix}readyz:{instance}"

    def readyz_channel(self, instance: str) -> str:
        """Pub/sub channel of one instance's /readyz round trip."""
        return f"{self.prefix}readyz:{instance}"

    def doorbell_channel(self) -> str:
        """Pub/sub channel: messages are stream keys that just got an entry."""
        return f"{self.prefix}doorbell"

    def delivery_outbox(self) -> str:
        """Hash: dedup key -> delivery payload, until its event is in the log."""
        return f"{self.prefix}delivery-outbox"

    def delivery_outbox_due(self) -> str:
        """Sorted set: dedup key -> when the outbox last sent it (sweeps re-send overdue ones)."""
        return f"{self.prefix}delivery-outbox-due"

    def delivery_outbox_resends(self) -> str:
        """Hash: dedup key -> how many times the sweep re-sent it (its backoff doubles each)."""
        return f"{self.prefix}delivery-outbox-resends"

    def dead_letters(self) -> str:
        """Stream: deliveries that failed their last retry, with the reason."""
        return f"{self.prefix}dead-letters:delivery"

    def import_lock(self, user_id: str) -> str:
        """Lock held while one mailbox import runs for a user."""
        return f"{self.prefix}lock:import:{user_id}"

    def index_lifecycle_lock(self, alias: str) -> str:
        """Lock held by whoever acts on an alias's indices (rollover, retention, migrate)."""
        return f"{self.prefix}lock:index-lifecycle:{alias}"

    def index_lifecycle_runs(self, alias: str) -> str:
        """Hash: job name -> JSON of its last run (outcome, time), shown by `index status`."""
        return f"{self.prefix}index-lifecycle:{alias}:runs"

    def demo_imported(self) -> str:
        """Flag set once the demo mailbox has been imported."""
        return f"{self.prefix}demo:imported"

    # Mail accounts (issue 5). Everything per account starts with ``account:<id>``, and
    # ``user-accounts:<user id>`` lists a user's accounts, so delete-my-data finds it all.

    def account(self, account_id: str) -> str:
        """Hash: an account's record (provider, state, encrypted credentials, counters)."""
        return f"{self.prefix}account:{account_id}"

    def account_prefix(self, account_id: str) -> str:
        """Prefix of every key that belongs to one account (for SCAN on delete)."""
        return f"{self.prefix}account:{account_id}:"

    def user_accounts(self, user_id: str) -> str:
        """Set: the account ids a user has connected."""
        return f"{self.prefix}user-accounts:{user_id}"

    def account_cursor(self, account_id: str) -> str:
        """Hash: sync cursors (Gmail history id; per IMAP folder; mbox offset), as JSON."""
        return f"{self.prefix}account:{account_id}:cursor"

    def account_messages(self, account_id: str) -> str:
        """Hash: message key -> JSON of where the account holds it (folders and labels)."""
        return f"{self.prefix}account:{account_id}:messages"

    def account_folder_uids(self, account_id: str, folder_digest: str, uidvalidity: int) -> str:
        """Hash: IMAP uid -> message key, for one folder generation (UIDVALIDITY)."""
        return f"{self.prefix}account:{account_id}:uids:{folder_digest}:{uidvalidity}"

    def account_lock(self, account_id: str) -> str:
        """Lock: held while one sync of the account runs, so two never overlap."""
        return f"{self.prefix}account:{account_id}:lock"

    def account_queued(self, account_id: str) -> str:
        """Flag: a sync of the account is already queued, so bursts enqueue it once."""
        return f"{self.prefix}account:{account_id}:queued"

    def account_rerun(self, account_id: str) -> str:
        """Flag: a sync was asked for while one ran; the running one goes round again."""
        return f"{self.prefix}account:{account_id}:rerun"

    def worker_stopping(self, hostname: str) -> str:
        """Flag: this Celery worker is shutting down; its long tasks stop after their batch."""
        return f"{self.prefix}worker:{hostname}:stopping"

    def all_accounts(self) -> str:
        """Set: every account id, for the scheduled sync of all accounts."""
        return f"{self.prefix}accounts"

    def account_quota(self, account_id: str, window: int) -> str:
        """Counter: Gmail API quota units spent by the account in one minute window."""
        return f"{self.prefix}account:{account_id}:quota:{window}"

    def account_push_seen(self, account_id: str, message_id: str) -> str:
        """Flag: a Pub/Sub push message already acted on (duplicates are no-ops)."""
        return f"{self.prefix}account:{account_id}:push:{message_id}"

    def gmail_address_accounts(self, address: str) -> str:
        """Set: account ids syncing a Gmail address (push notifications name the address)."""
        return f"{self.prefix}gmail-address:{address.lower()}"

    def oauth_state_used(self, nonce: str) -> str:
        """Flag: an OAuth state already redeemed, so a callback URL works once."""
        return f"{self.prefix}oauth-state-used:{nonce}"

    # Resumable uploads (issue 11). Keyed by the owner's id, so delete-my-data finds them.

    def upload(self, user_id: str, upload_id: str) -> str:
        """Hash: an upload's length, file name, owner, whether its head was checked, its account."""
        return f"{self.prefix}upload:{user_id}:{upload_id}"

    def user_uploads(self, user_id: str) -> str:
        """Set: the upload ids a person has started."""
        return f"{self.prefix}user-uploads:{user_id}"

    def upload_lock(self, user_id: str, upload_id: str) -> str:
        """Lock: held while one request appends to an upload."""
        return f"{self.prefix}upload:{user_id}:{upload_id}:lock"

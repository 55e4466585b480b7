"""Mail providers: Gmail API, IMAP and mbox uploads behind one interface.

A provider turns an account's stored cursor into ``SyncBatch``es: raw
RFC 5322 messages with their provider metadata, deletions, label changes,
and the cursor to store once the batch has been applied. ``shared.sync.engine``
drives any provider the same way and is the only writer of cursors.
"""

"""Streaming transports over the event log: SSE, the WebSocket, the per-process doorbell relay, the asking glue and graceful shutdown."""

"""The assistant: turning a question into a search, composing the grounded answer, and the asking protocol on the event log. Imports ``core``, ``index`` and ``realtime``."""

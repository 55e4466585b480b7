"""People and their credentials: users, password hashing, access tokens, single-use stream tickets. Imports only ``shared.core``."""

"""The assistant's fault tests use a broker of their own and a hung search server."""

from tests.faults import blackhole, isolated  # noqa: F401

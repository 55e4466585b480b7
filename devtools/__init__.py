"""Development only: the ``make run`` runner, local Redis and noida-db servers, the demo mailbox generator. Used by ``make run``, the tests and the bench; never imported by runtime code."""

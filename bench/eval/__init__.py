"""``make eval``: labelled questions over the demo mailbox, scored against the generator's facts."""

"""``make chaos``: faults injected into the real system, judged from a recorded history."""

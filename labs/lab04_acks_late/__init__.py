"""Lab 04: acks_late versus a worker kill."""

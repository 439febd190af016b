"""Lab 06: routing keys, exchanges and queues on Redis."""

"""Lab 02: retry, the ETA message and unacked_index."""

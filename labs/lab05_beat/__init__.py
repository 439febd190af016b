"""Lab 05: beat, the scheduler that only publishes."""

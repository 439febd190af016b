"""Lab 10: the broker goes away: a Redis restart with and without persistence, a hung broker,
and what the worker and the client do."""

"""Lab 03: bound tasks and the request context."""

"""Lab 01: hello-world add."""

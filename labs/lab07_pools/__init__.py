"""Lab 07: pool comparison against the ideal."""

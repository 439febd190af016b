"""Lab 09: canvas (chain, group, chord), what it costs, and what happens when a member fails."""

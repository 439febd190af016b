"""Lab 11 plots."""
FIGURES: dict = {}

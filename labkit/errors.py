"""The one error a user can act on: a run that cannot start."""


class SetupError(Exception):
    """No Redis binary, broker unreachable, unknown lab, bad parameter: exit code 2, one line."""

"""The two ways a command fails: the user's input (exit 2) or the job itself (exit 1)."""


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


class CommandError(Exception):
    """A command that could not do its job: printed as one line, exit status 1."""

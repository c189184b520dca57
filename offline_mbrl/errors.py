"""The one exception type that reaches the user as a one-line message instead of a traceback."""


class UserError(Exception):
    """Bad input or a missing prerequisite, explained in one line.

    The CLI prints `error: <message>` and exits with status 2. Raise it with a message that says what
    is wrong and, where one exists, the exact command that fixes it.
    """

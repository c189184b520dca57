"""The one exception type that reaches the user as a one-line message instead of a traceback."""


class UserError(Exception):
    """Bad input or a missing prerequisite, explained in one line.

    The CLI prints `error: <message>` and exits with status 2. Raise it with a message that says what
    is wrong and, where one exists, the exact command that fixes it. The message is kept to one line: any
    line break in it (a value the user gave, an exception's own text) becomes a space.
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(" ".join(str(message).split()))


class EnvironmentFault(UserError):
    """A prerequisite of the machine, not of the settings: a missing dataset or device, a cache or results
    folder that cannot be written. A sweep stops at the first one instead of spending its trials on it."""

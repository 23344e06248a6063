"""The one exception type that reaches the user as a message instead of a traceback."""


class UserError(Exception):
    """A problem that is the user's to fix: bad config, missing file, unknown name.

    The CLI prints `str(err)` and exits with status 2. Messages say what is wrong,
    where, and how to fix it; one problem per line.
    """

    exit_code = 2

"""maskviz's user-facing error: one line saying what, where, and how to fix."""


class MaskvizError(Exception):
    """A problem with the user's input (file, flags, model) that maskviz reports in
    one line and exit code 2, never as a traceback."""

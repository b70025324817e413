"""The one family of errors that mean "the user's input is wrong", not "hill is broken".

Every check of a config, data folder, edits file, checkpoint, run name or command-line value
raises a :class:`HillError` whose message is one line that names the file, key or value and
says what is wrong. The CLI prints that line and exits with code 2, with no traceback; a flow
run ends Failed with that line as its state message. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class HillError(ValueError):
    """A user's mistake, said in one line (the message names what to fix)."""

"""The errors a user can cause, and the exit statuses the command line gives them.

``UserError``: something the user can fix (a missing file, a bad flag value, an offline download).
``Terminated``: the process was asked to stop (SIGTERM from ``timeout``, ``docker stop`` or a
scheduler); a training loop saves ``last.pt`` first. Both end in one line on stderr, no traceback.
"""

from __future__ import annotations

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


class UserError(Exception):
    """An error the user can fix: the CLI prints its message alone and exits with status 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived. A ``KeyboardInterrupt`` so that every ``except Exception`` lets it through
    and every Ctrl-C handler (save ``last.pt``, close the progress bar) handles it too."""

"""User-facing errors and the wrapper that turns them into one readable message.

A :class:`LeafnetError` is a problem with the user's input (a missing folder, a bad
dataset, a wrong flag). Entry points print its message and exit non-zero without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import functools
import signal
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


class LeafnetError(Exception):
    """An error in the user's data or command line, with a message that says the fix."""


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM ends a command like Ctrl-C does: clean-up code runs and workers are stopped."""
    raise KeyboardInterrupt


def exit_on_user_error(program: str) -> Callable[[F], F]:
    """Decorate a console entry point so that a :class:`LeafnetError` ends it cleanly."""

    def decorate(main: F) -> F:
        @functools.wraps(main)
        def wrapper(*args: object, **kwargs: object) -> object:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, _terminate)
            try:
                return main(*args, **kwargs)
            except LeafnetError as error:
                print(f"{program}: error: {error}", file=sys.stderr)
                sys.exit(1)
            except KeyboardInterrupt:
                print(f"{program}: interrupted", file=sys.stderr)
                sys.exit(130)
            except OSError as error:
                if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                print(f"{program}: error: {error.filename or ''}: the disk is full ({error}); "
                      "free space and run the command again (finished work is kept)",
                      file=sys.stderr)
                sys.exit(1)

        return wrapper  # type: ignore[return-value]

    return decorate

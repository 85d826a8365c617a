"""User-facing errors and the wrapper that turns them into one readable message.

A :class:`LeafnetError` is a problem with the user's input (a missing folder, a bad
dataset, a wrong flag). Entry points print its message and exit non-zero without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


class LeafnetError(Exception):
    """An error in the user's data or command line, with a message that says the fix."""


def exit_on_user_error(program: str) -> Callable[[F], F]:
    """Decorate a console entry point so that a :class:`LeafnetError` ends it cleanly."""

    def decorate(main: F) -> F:
        @functools.wraps(main)
        def wrapper(*args: object, **kwargs: object) -> object:
            try:
                return main(*args, **kwargs)
            except LeafnetError as error:
                print(f"{program}: error: {error}", file=sys.stderr)
                sys.exit(1)
            except KeyboardInterrupt:
                print(f"{program}: interrupted", file=sys.stderr)
                sys.exit(130)

        return wrapper  # type: ignore[return-value]

    return decorate

"""Map a function over many items in worker processes, with a progress bar."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from tqdm import tqdm

from leafnet.errors import LeafnetError
from leafnet.utilities.processes import die_with_parent

T = TypeVar("T")
R = TypeVar("R")


def default_num_processes() -> int:
    """``LEAFNET_NUM_PROCESSES`` if set, else the number of cores (at most 8)."""
    value = os.environ.get("LEAFNET_NUM_PROCESSES")
    if value:
        if not value.strip().isdigit():
            raise LeafnetError(f"LEAFNET_NUM_PROCESSES={value!r} is not a number of processes; "
                               "set it to a whole number such as 2, or unset it")
        return max(1, int(value))
    return max(1, min(8, os.cpu_count() or 1))


def parallel_map(
    function: Callable[[T], R],
    items: Iterable[T],
    num_processes: int | None = None,
    description: str = "",
    show_progress: bool = True,
) -> list[R]:
    """``[function(item) for item in items]``, in order, over ``num_processes`` workers.

    One process (or one item) runs inline, which keeps tracebacks simple and avoids the
    start-up cost where it would not pay. A worker that dies (killed, out of memory) ends
    the map with a :class:`LeafnetError` instead of hanging.
    """
    items = list(items)
    num_processes = default_num_processes() if num_processes is None else num_processes
    results: list[R] = []
    with tqdm(total=len(items), desc=description, disable=not show_progress, leave=False) as bar:
        if num_processes <= 1 or len(items) <= 1:
            for item in items:
                results.append(function(item))
                bar.update()
            return results
        chunksize = max(1, min(16, len(items) // (num_processes * 8)))
        context = multiprocessing.get_context("fork")
        pool = ProcessPoolExecutor(num_processes, mp_context=context,
                                   initializer=die_with_parent)
        try:
            for result in pool.map(function, items, chunksize=chunksize):
                results.append(result)
                bar.update()
        except BrokenProcessPool as error:
            raise LeafnetError(
                f"a worker process died while {description or 'working'} (killed, or out of "
                "memory?); finished work is kept, so run the command again to continue, "
                "with fewer processes (-np) if memory is short"
            ) from error
        except BaseException:
            # Interrupted or failed: drop the queued items so the workers stop after the
            # ones they are on, instead of working through the whole list.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
    return results

"""Other processes: whether one still runs, and a lock that keeps two commands off one dataset."""

from __future__ import annotations

import contextlib
import ctypes
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from leafnet.errors import LeafnetError

LOCK_FILE = ".leafnet.lock"
PR_SET_PDEATHSIG = 1


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a process of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with_parent() -> None:
    """In a worker process: ask the kernel (Linux) to end it when its parent dies, so that a
    killed command (even with SIGKILL) leaves no workers behind. SIGTERM gets its default
    action back first: a worker forked from a command inherits the command's handler, which
    raises KeyboardInterrupt, and inside a task the pool's worker loop caught it as the task's
    error and waited on its queue forever (reparented to init)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent.pid:
        os._exit(1)


def python_main_command(module: str, *arguments: str) -> list[str]:
    """The command that runs ``module``'s ``main()`` in a new Python with ``arguments``.

    Started with ``-c`` rather than ``-m``: a spawn pool in the child (nnU-Net's fingerprint
    and preprocessing use them) then starts workers that import only what their tasks need;
    under ``-m`` every worker imports the child's whole main module again first (about 3 s of
    CPU per worker for the nnU-Net halves of the benchmarks)."""
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.argv[0] = "
            f"{module!r}; main()", *arguments]


def _parent_death_signal() -> Callable[[], Any] | None:
    """The ``preexec_fn`` that asks the kernel (Linux) to send a child SIGTERM when this process
    dies, even by SIGKILL; None elsewhere. libc's ``prctl`` is looked up here, before the fork,
    so that the forked child only calls it (a library lookup after forking a threaded process
    can deadlock)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def run_child(command: list[str], **options: Any) -> subprocess.CompletedProcess:
    """``subprocess.run(command, **options)`` for a child command (torchrun, the nnU-Net half
    of a benchmark) that ends when this process ends, however it ends."""
    return subprocess.run(command, preexec_fn=_parent_death_signal(), **options)


class ChildStalled(LeafnetError):
    """A child command wrote nothing for longer than its watchdog allows and was ended."""


STOP_GRACE_SECONDS = 10.0
STALL_MINUTES = 10.0  # the default watchdog of the benchmarks' child commands


def run_watched(command: list[str], log: Path, stall_seconds: float,
                **options: Any) -> int:
    """Run a child command as :func:`run_child` does, its output (stdout and stderr) going to
    ``log``, and return its exit status; a child that writes nothing for ``stall_seconds`` (a
    hung pool, a deadlock) is ended with the processes it started (its own process group:
    SIGTERM, then SIGKILL after ``STOP_GRACE_SECONDS``) and :class:`ChildStalled` names the
    log. Progress bars and logs count as output; the child's Python is unbuffered, so that its
    prints reach the log when they are made."""
    log.parent.mkdir(parents=True, exist_ok=True)
    options["env"] = {**options.get("env", os.environ), "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as output:
        child = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                 preexec_fn=_parent_death_signal(), start_new_session=True,
                                 **options)
        size, changed = -1, time.monotonic()
        while child.poll() is None:
            time.sleep(0.5)
            now_size = log.stat().st_size
            if now_size != size:
                size, changed = now_size, time.monotonic()
            elif time.monotonic() - changed > stall_seconds:
                _end_group(child)
                raise ChildStalled(
                    f"{' '.join(command[:4])} ... wrote nothing for {stall_seconds / 60:g} "
                    f"minutes and was ended; its output is in {log}")
    return child.returncode


def _end_group(child: subprocess.Popen) -> None:
    """SIGTERM to ``child``'s process group, SIGKILL to what is left after the grace time."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sent)
        try:
            child.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            continue
        if sent == signal.SIGTERM:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
        return


def exit_on_sigterm() -> None:
    """In a child command: turn SIGTERM into a normal exit, so that its own daemon workers
    (multiprocessing ends them at exit) do not outlive it. Processes it forks get SIGTERM's
    default action back at the fork: their parents terminate them with it and wait (a pool's
    ``terminate``), and a Python-level handler there runs only when the interpreter gets to it;
    a pool worker blocked on the task queue's lock then never died and the pool waited forever
    (seen in nnU-Net's planning under versus-nnunet)."""
    main = os.getpid()

    def stop(*_: object) -> None:
        if os.getpid() != main:
            os._exit(128 + signal.SIGTERM)
        sys.exit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    os.register_at_fork(after_in_child=_default_sigterm)


def _default_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


@contextmanager
def folder_lock(folder: Path, what: str, name: str = LOCK_FILE) -> Iterator[None]:
    """Hold ``folder/name`` (PID and command) while ``what`` works on ``folder``.

    A second command on the same folder stops with a message naming the first; a lock left by
    a process that no longer runs is taken over."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    record = json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv) or what,
                         "what": what})
    for _ in range(2):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if holder is not None and process_alive(int(holder.get("pid", -1))):
                raise LeafnetError(
                    f"{folder} is in use by process {holder['pid']} ({holder.get('what')}: "
                    f"{holder.get('command')}); wait for it to finish, or stop it. If no such "
                    f"process runs, delete {path}") from None
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(descriptor, "w") as handle:
            handle.write(record)
        break
    else:
        raise LeafnetError(f"{path}: could not be created; delete it and try again")
    try:
        yield
    finally:
        if (_holder(path) or {}).get("pid") == os.getpid():
            path.unlink(missing_ok=True)

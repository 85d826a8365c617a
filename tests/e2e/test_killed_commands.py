"""A command killed with SIGKILL leaves none of its worker processes behind (issue 35, 6):
the kernel sends each worker SIGTERM when its parent dies, and that signal ends it even in the
middle of a task."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="parent-death signals and /proc are Linux's")


def _children(pid: int) -> list[int]:
    """The ids of the processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("command", ["convert", "plan"])
def test_a_command_killed_in_the_middle_of_its_pool_leaves_no_worker(tmp_path, command):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for variable in ("LEAFNET_RAW", "LEAFNET_PREPROCESSED", "LEAFNET_RESULTS"):
        env[variable] = str(tmp_path / variable.lower())
    scripts = Path(sys.executable).parent
    demo = [str(scripts / "leafnet_convert"), "demo", "--num-cases", "400", "--size", "96"]
    if command == "plan":
        subprocess.run(demo + ["-np", "2"], env=env, check=True, capture_output=True)
        arguments = [str(scripts / "leafnet_plan_and_preprocess"), "-d", "999", "--preset",
                     "tiny", "-np", "2"]
    else:
        arguments = demo + ["-np", "2"]
    process = subprocess.Popen(arguments, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    workers: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        workers = [pid for pid in _children(process.pid) if _running(pid)]
        if len(workers) == 2:
            time.sleep(0.5)  # inside tasks by now, and still the same two workers
            if all(_running(pid) for pid in workers) and \
                    sorted(workers) == sorted(_children(process.pid)):
                break
        time.sleep(0.05)
    else:
        pytest.fail("the command ended before a pool of two workers was busy")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 15
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in workers if _running(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} outlived their killed command"

"""The watchdog of the benchmarks' child commands (issue 35, 7): a child that writes nothing
for the allowed time is ended with the processes it started and named, never waited on
forever; one that keeps writing runs to its end."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from leafnet.utilities.processes import ChildStalled, run_watched

STALLED = """
import multiprocessing, os, time
def hang(_):
    print("worker", os.getpid(), flush=True)
    time.sleep(600)
if __name__ == "__main__":
    print("started", flush=True)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool.map(hang, [0])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and /proc")
def test_a_stalled_child_is_ended_with_its_pool_and_named(tmp_path):
    log = tmp_path / "child.log"
    script = tmp_path / "stalled.py"
    script.write_text(STALLED)
    started = time.monotonic()
    with pytest.raises(ChildStalled, match=f"wrote nothing for .* minutes .*{log.name}"):
        run_watched([sys.executable, str(script)], log, stall_seconds=2)
    assert time.monotonic() - started < 30
    output = log.read_text().split()
    worker = int(output[output.index("worker") + 1])
    state = Path(f"/proc/{worker}/stat")
    deadline = time.monotonic() + 10   # SIGKILL is delivered asynchronously
    while _running(state) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(state), "the child's pool worker outlived it"


def _running(state: Path) -> bool:
    try:
        return state.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_child_that_keeps_writing_runs_to_its_end(tmp_path):
    code = "import time\nfor i in range(4):\n    print(i, flush=True); time.sleep(0.6)\n"
    status = run_watched([sys.executable, "-c", code], tmp_path / "child.log",
                         stall_seconds=1.5)
    assert status == 0 and (tmp_path / "child.log").read_text().split() == ["0", "1", "2", "3"]

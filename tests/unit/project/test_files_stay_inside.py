"""Class B of the safety issue: no data lost, nothing outside leafnet's folders touched,
one command per dataset at a time, and no workers outliving a killed command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import disc_mask, rgb, save

from leafnet.errors import LeafnetError
from leafnet.planning import plan_and_preprocess
from leafnet.preprocessing import load_preprocessed_case
from leafnet.training.registry import find_trainer
from leafnet.utilities.processes import LOCK_FILE

QUIET = dict(num_processes=1, show_progress=False)


def dotted_dataset(raw, ids=("img.c00", "img.c01", "scan.a.b", "x3", "x4"), channels=3):
    """A valid dataset whose case ids contain dots (the integrity check accepts them)."""
    folder = raw / "Dataset030_Dots"
    for index, case in enumerate(ids):
        image = rgb(24, 24, index) if channels == 3 else rgb(24, 24, index)[..., 0]
        save(folder / "imagesTr" / f"{case}_0000.png", image)
        save(folder / "labelsTr" / f"{case}.png", disc_mask(24, 24))
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "R", "1": "G", "2": "B"} if channels == 3 else {"0": "gray"},
        "labels": {"background": 0, "foreground": 1}, "numTraining": len(ids),
        "file_ending": ".png",
        "leafnet_split": {"rule": "ratio", "train": 0.6, "val": 0.2, "test": 0.2}}))
    return folder


def test_case_ids_with_dots_keep_their_arrays_through_planning_twice(leafnet_folders):
    dotted_dataset(leafnet_folders["LEAFNET_RAW"])
    for _ in range(2):
        result = plan_and_preprocess(30, **QUIET)
        assert result.removed == 0
        data = result.folder / result.plans.data_identifier
        for case in ("img.c00", "img.c01", "scan.a.b", "x3", "x4"):
            assert load_preprocessed_case(data, case).label is not None, case


def test_stale_cases_go_but_files_leafnet_did_not_write_stay(leafnet_folders):
    raw = dotted_dataset(leafnet_folders["LEAFNET_RAW"])
    result = plan_and_preprocess(30, **QUIET)
    data = result.folder / result.plans.data_identifier
    (data / "notes.json").write_text("{}")
    (data / "mine.npy").write_bytes(b"user data")
    for path in (raw / "imagesTr" / "x4_0000.png", raw / "labelsTr" / "x4.png"):
        path.unlink()
    description = json.loads((raw / "dataset.json").read_text())
    (raw / "dataset.json").write_text(json.dumps({**description, "numTraining": 4}))
    result = plan_and_preprocess(30, **QUIET)
    assert result.removed == 1
    assert not (data / "x4.npy").exists() and not (data / "x4.json").exists()
    assert (data / "notes.json").is_file() and (data / "mine.npy").is_file()
    plan_and_preprocess(30, clean=True, **QUIET)
    assert (data / "notes.json").is_file() and (data / "mine.npy").is_file()


@pytest.mark.parametrize("identifier", ["../../victim", ".", "..", "a/b", ".hidden"])
def test_an_edited_data_identifier_cannot_leave_the_folder(leafnet_folders, tmp_path,
                                                           identifier):
    dotted_dataset(leafnet_folders["LEAFNET_RAW"])
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.txt").write_text("years of work")
    result = plan_and_preprocess(30, **QUIET)
    plans_path = result.folder / "leafnet_plans.json"
    plans = json.loads(plans_path.read_text())
    plans_path.write_text(json.dumps({**plans, "data_identifier": identifier}))
    with pytest.raises(LeafnetError, match="data_identifier .* is not a plain name"):
        plan_and_preprocess(30, **QUIET)
    with pytest.raises(LeafnetError, match="data_identifier"):
        find_trainer("LEAFTrainer_x0")(30, show_progress=False)
    assert (victim / "thesis.txt").read_text() == "years of work"
    assert plans_path.is_file() and (result.folder / "splits_final.json").is_file()


def test_case_ids_in_an_edited_splits_file_cannot_leave_the_folder(leafnet_folders):
    dotted_dataset(leafnet_folders["LEAFNET_RAW"])
    result = plan_and_preprocess(30, **QUIET)
    splits_path = result.folder / "splits_final.json"
    splits = json.loads(splits_path.read_text())
    splits["folds"][0]["train"].append("../../../etc/passwd")
    splits_path.write_text(json.dumps(splits))
    with pytest.raises(LeafnetError, match="case id '../../../etc/passwd' is not a plain name"):
        find_trainer("LEAFTrainer_x0")(30, show_progress=False)
    splits.pop("generated_by")
    splits_path.write_text(json.dumps(splits))
    with pytest.raises(LeafnetError, match="is not a plain name"):
        plan_and_preprocess(30, **QUIET)


def test_training_refuses_unfinished_preprocessing_and_a_changed_raw_dataset(leafnet_folders):
    raw = dotted_dataset(leafnet_folders["LEAFNET_RAW"])
    result = plan_and_preprocess(30, **QUIET)
    data = result.folder / result.plans.data_identifier
    case = result.splits["folds"][0]["train"][0]
    (data / f"{case}.json").unlink()
    with pytest.raises(LeafnetError, match=rf"1 cases .*{case}.*leafnet_plan_and_preprocess"):
        find_trainer("LEAFTrainer_x0")(30, show_progress=False)
    plan_and_preprocess(30, **QUIET)
    description = json.loads((raw / "dataset.json").read_text())
    (raw / "dataset.json").write_text(json.dumps({**description, "description": "edited"}))
    with pytest.raises(LeafnetError, match="changed after planning"):
        find_trainer("LEAFTrainer_x0")(30, show_progress=False)


def test_plans_of_another_version_of_the_dataset_are_refused_not_used(leafnet_folders):
    raw = dotted_dataset(leafnet_folders["LEAFNET_RAW"])
    plan_and_preprocess(30, **QUIET)
    for path in (raw / "imagesTr").iterdir():
        save(path, rgb(24, 24)[..., 0])
    description = json.loads((raw / "dataset.json").read_text())
    (raw / "dataset.json").write_text(json.dumps({**description, "channel_names": {"0": "g"}}))
    with pytest.raises(LeafnetError, match="3 channel.* in the plans, 1 in the raw.*--clean"):
        plan_and_preprocess(30, **QUIET)
    assert plan_and_preprocess(30, clean=True, **QUIET).plans.num_channels == 1


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_second_planning_run_stops_naming_the_first_and_stale_locks_are_taken_over(
        leafnet_folders):
    dotted_dataset(leafnet_folders["LEAFNET_RAW"])
    folder = leafnet_folders["LEAFNET_PREPROCESSED"] / "Dataset030_Dots"
    folder.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / LOCK_FILE).write_text(json.dumps(
            {"pid": sleeper.pid, "command": "leafnet_plan_and_preprocess -d 30",
             "what": "leafnet_plan_and_preprocess"}))
        with pytest.raises(LeafnetError, match=rf"in use by process {sleeper.pid}"):
            plan_and_preprocess(30, **QUIET)
    finally:
        sleeper.kill()
        sleeper.wait()
    (folder / LOCK_FILE).write_text(json.dumps({"pid": _dead_pid(), "what": "x"}))
    plan_and_preprocess(30, **QUIET)
    assert not (folder / LOCK_FILE).exists()


def test_a_second_conversion_of_the_same_id_stops_naming_the_first(leafnet_folders):
    from leafnet.dataset_conversion import convert_demo

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    lock = leafnet_folders["LEAFNET_RAW"] / ".Dataset999.lock"
    try:
        lock.write_text(json.dumps({"pid": sleeper.pid, "what": "converting dataset 999",
                                    "command": "leafnet_convert demo"}))
        with pytest.raises(LeafnetError, match="in use by process .*leafnet_convert demo"):
            convert_demo(num_cases=10, size=32, num_processes=1, show_progress=False)
    finally:
        sleeper.kill()
        sleeper.wait()
    raw = leafnet_folders["LEAFNET_RAW"]
    assert not any(p.name.startswith("Dataset999") for p in raw.iterdir())


WORKERS = textwrap.dedent("""
    import os, sys, time
    from leafnet.utilities.parallel import parallel_map

    def work(item):
        open(os.path.join(sys.argv[1], str(os.getpid())), "w").close()
        time.sleep(60)

    parallel_map(work, range(8), num_processes=2, show_progress=False)
""")


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_command_leaves_no_worker_processes(tmp_path, how):
    assert not _survivors(tmp_path, WORKERS, 2, how)


CHILD_COMMAND = textwrap.dedent("""
    import sys
    from leafnet.utilities.processes import run_child

    run_child([sys.executable, "-c", "import os, sys, time; "
               "open(os.path.join(sys.argv[1], str(os.getpid())), 'w').close(); time.sleep(60)",
               sys.argv[1]])
""")


def test_a_killed_command_leaves_no_child_command_behind(tmp_path):
    """torchrun under leafnet_train -num_gpus, nnU-Net under a benchmark: SIGKILL of the parent
    ends them too."""
    assert not _survivors(tmp_path, CHILD_COMMAND, 1, signal.SIGKILL)


def _survivors(tmp_path, source: str, count: int, how: signal.Signals) -> list[int]:
    """Run ``source`` (which starts ``count`` processes that write their pids into the folder
    given as its argument), send it ``how`` and return the started processes still alive 20 s
    after it ended."""
    script = tmp_path / "parent.py"
    script.write_text(source)
    pids = tmp_path / "pids"
    pids.mkdir()
    parent = subprocess.Popen([sys.executable, str(script), str(pids)])
    deadline = time.monotonic() + 60
    while len(list(pids.iterdir())) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    started = [int(p.name) for p in pids.iterdir()]
    assert len(started) == count
    parent.send_signal(how)
    parent.wait(timeout=30)
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in started if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0]
    return status != "Z"

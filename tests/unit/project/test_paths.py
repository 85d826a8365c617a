from pathlib import Path

import pytest

from leafnet import paths


def test_environment_variables_override_folders_when_read(monkeypatch, tmp_path):
    monkeypatch.setenv("LEAFNET_RAW", str(tmp_path / "a"))
    assert paths.raw_root() == tmp_path / "a"
    monkeypatch.setenv("LEAFNET_RAW", str(tmp_path / "b"))
    assert paths.raw_root() == tmp_path / "b"


@pytest.mark.parametrize(
    "function, folder",
    [(paths.raw_root, "leafnet_raw"), (paths.preprocessed_root, "leafnet_preprocessed"),
     (paths.results_root, "leafnet_results")],
)
def test_defaults_are_the_checkout_top_level_folders(monkeypatch, function, folder):
    for variable in ("LEAFNET_RAW", "LEAFNET_PREPROCESSED", "LEAFNET_RESULTS"):
        monkeypatch.delenv(variable, raising=False)
    checkout = Path(paths.__file__).resolve().parents[1]
    assert function() == checkout / folder


def test_weights_default_to_user_cache(monkeypatch):
    monkeypatch.delenv("LEAFNET_WEIGHTS", raising=False)
    assert paths.weights_root() == Path.home() / ".cache" / "leafnet"

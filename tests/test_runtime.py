import json
import os
import warnings

import pytest
import torch

from recbook import runtime


def test_device_override(monkeypatch):
    monkeypatch.setenv("RECBOOK_DEVICE", "cpu")
    assert runtime.device("auto") == torch.device("cpu")
    monkeypatch.setenv("RECBOOK_DEVICE", "tpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        runtime.device()


def test_missing_cuda_is_an_error(monkeypatch):
    monkeypatch.delenv("RECBOOK_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA"):
        runtime.device("cuda")


def test_start_seeds_limits_threads_and_records_the_device(monkeypatch, capsys):
    monkeypatch.setenv("RECBOOK_DEVICE", "cpu")
    threads = torch.get_num_threads()
    try:
        assert runtime.start("auto", seed=5, threads=1) == torch.device("cpu")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    first = torch.rand(2)
    runtime.seed_everything(5)
    assert torch.equal(first, torch.rand(2))  # start seeded torch with the seed it was given
    assert runtime.recorded()["device"] == "cpu"
    assert "torch computes on cpu with 1 thread(s)" in capsys.readouterr().out
    shown = warnings.formatwarning("a copy", UserWarning, "/home/someone/x.py", 3)
    assert shown == "UserWarning: a copy\n"  # no machine path in a stored output
    assert runtime.start("auto", seed=0, framework="numpy") == "cpu"
    with pytest.raises(ValueError, match="unknown framework"):
        runtime.start("auto", framework="jax")
    with pytest.raises(ValueError, match="threads must be >= 1"):
        runtime.start("cpu", threads=0)
    with pytest.raises(ValueError, match="unknown device"):
        runtime.start("tpu", framework="numpy")


def test_seed_everything_repeats():
    runtime.seed_everything(7)
    a = torch.rand(3)
    runtime.seed_everything(7)
    assert torch.equal(a, torch.rand(3))
    with pytest.raises(ValueError, match="seed must be >= 0"):
        runtime.seed_everything(-1)
    with pytest.raises(TypeError, match="seed must be an integer"):
        runtime.seed_everything(1.5)


def test_seed_everything_leaves_pythonhashseed_alone(monkeypatch):
    """Setting PYTHONHASHSEED at run time has no effect on the running interpreter, so
    seed_everything no longer pretends to fix str hashing."""
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    runtime.seed_everything(3)
    assert "PYTHONHASHSEED" not in os.environ
    assert "PYTHONHASHSEED" in runtime.seed_everything.__doc__


def test_record_to_file(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    monkeypatch.setenv("RECBOOK_RECORD_FILE", str(target))
    runtime.record("rmse", 0.9)
    runtime.record("device", "cpu")
    assert json.loads(target.read_text()) == {"device": "cpu", "rmse": 0.9}
    assert runtime.recorded()["rmse"] == 0.9
    with pytest.raises(TypeError, match="number or string"):
        runtime.record("bad", [1, 2])


def test_environment_report():
    report = runtime.environment_report()
    assert {"python", "torch", "torch device"} <= set(report.index)


def test_import_tensorflow_is_silent(tmp_path):
    import subprocess
    import sys

    code = "import recbook.runtime as r; tf = r.import_tensorflow(); print(tf.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "tensorflow"
    assert "absl" not in done.stderr and "cuda" not in done.stderr.lower(), done.stderr


def test_installed_version_reads_metadata_and_says_none_when_absent():
    import platform
    from importlib import metadata

    assert runtime.installed_version("python") == platform.python_version()
    assert runtime.installed_version("numpy") == metadata.version("numpy")
    assert runtime.installed_version("no-such-package-recbook") is None

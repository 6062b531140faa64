"""The Flower App's own code (``flower_app/recbook_flower``) and how recbook finds the App.

The App is a separate project that imports recbook; recbook never imports it, and finds it by
folder (``LocalFederation(app_dir=...)``, by default ``flower_app/`` in the working directory
or a folder above it). The App's run config is a typed, checked ``TaskConfig``: one field per
key of the App's ``pyproject.toml``. Nothing here starts Flower.
"""

from __future__ import annotations

import pytest
from flower_defaults import APP, DEFAULTS, ROOT
from recbook_flower.task import TaskConfig

from recbook import federated as fl
from recbook.federated.local_federation import find_app_dir


def test_the_typed_config_reads_the_apps_pyproject_defaults():
    cfg = TaskConfig.from_run_config(DEFAULTS)
    assert (cfg.dataset, cfg.partition_column, cfg.num_partitions) == ("shop", "region", 8)
    assert cfg.dp == "off" and cfg.batch_size == 128 and isinstance(cfg.lr, float)
    with pytest.raises(AttributeError):
        cfg.num_rounds = 5  # frozen: every component sees the same settings
    # an int given on the command line for a float setting is a float in the config
    assert TaskConfig.from_run_config(DEFAULTS | {"lr": 1}).lr == 1.0


@pytest.mark.parametrize(
    "override, error, match",
    [
        ({"num-rounds": 2.5}, TypeError, "run-config num-rounds must be an integer"),
        ({"num-rounds": 0}, ValueError, "run-config num-rounds must be >= 1"),
        ({"dim": True}, TypeError, "run-config dim"),
        ({"dataset": "movielens"}, ValueError, "unknown run-config dataset"),
        ({"partition-column": 3}, TypeError, "partition-column must be a string"),
        ({"partition-column": ""}, ValueError, "partition-column is empty"),
        ({"test-size": 1.0}, ValueError, "run-config test-size"),
        ({"lr": "fast"}, TypeError, "run-config lr must be a number"),
        ({"dp": "server-adaptive"}, ValueError, "not offered.*server-clipping"),
        ({"data-path": "ml-100k.zip"}, ValueError, "data-path is for public data"),
        ({"dataset": "movielens-100k", "shop-scale": 0.5}, ValueError, "shop-scale"),
    ],
)
def test_the_typed_config_names_the_bad_key_and_how_to_set_it(override, error, match):
    with pytest.raises(error, match=match) as err:
        TaskConfig.from_run_config(DEFAULTS | override)
    assert "set " in str(err.value)  # and what to do


def test_the_typed_config_refuses_missing_and_unknown_keys():
    with pytest.raises(ValueError, match=r"lacks \['dim'\].*pyproject.toml"):
        TaskConfig.from_run_config({k: v for k, v in DEFAULTS.items() if k != "dim"})
    with pytest.raises(ValueError, match=r"unknown run-config key\(s\) \['epochs'\]"):
        TaskConfig.from_run_config(DEFAULTS | {"epochs": 3})


def test_local_federation_finds_the_app_by_folder(tmp_path, monkeypatch):
    assert find_app_dir(APP) == APP
    assert find_app_dir(start=ROOT / "notebooks") == APP  # a notebook runs in notebooks/
    monkeypatch.chdir(ROOT / "notebooks")
    assert find_app_dir() == APP
    monkeypatch.chdir(tmp_path)  # outside any checkout: say what to pass
    with pytest.raises(FileNotFoundError, match="pass app_dir="):
        fl.LocalFederation("simulation", 2)
    with pytest.raises(FileNotFoundError, match="holds no pyproject.toml"):
        fl.LocalFederation("simulation", 2, app_dir=tmp_path)
    federation = fl.LocalFederation("simulation", 2, app_dir=APP)  # starts nothing yet
    try:
        assert federation.app_dir == APP and federation.procs == []
    finally:
        federation.close()

"""recbook.book.development: what a development run chose comes back exactly, for its setup only."""

from __future__ import annotations

import pytest

from recbook.book import development

DEVELOPED = {
    "setup": {"DIM": 16, "HIDDEN": (64, 32), "GRID": (1e-05, 3e-05)},
    "rating": {"biases": {"chosen": 10.0, "epochs": None, "validation": {1.0: 1.0, 3.0: 0.99}}},
    "results": {("click MLP", 0.003, 1e-05): (0.10844, 6)},
}


def test_a_saved_development_loads_back_with_its_keys(tmp_path):
    path = development.save(tmp_path / "dev" / "01.json", "shop", "matched", 1000, DEVELOPED)
    got = development.load(path, "shop", "matched", 1000, DEVELOPED["setup"])
    assert got["rating"]["biases"]["validation"] == {1.0: 1.0, 3.0: 0.99}
    assert got["results"][("click MLP", 0.003, 1e-05)] == [0.10844, 6]
    assert list(tmp_path.joinpath("dev").iterdir()) == [path]  # no temporary file left


def test_another_setup_or_world_gets_nothing(tmp_path):
    path = development.save(tmp_path / "d.json", "shop", "matched", 1000, DEVELOPED)
    other = {**DEVELOPED["setup"], "DIM": 32}
    assert development.load(path, "shop", "matched", 1000, other) is None
    assert development.load(path, "shop", "misspecified", 1000, DEVELOPED["setup"]) is None
    assert development.load(tmp_path / "none.json", "shop", "matched", 1000, {}) is None


def test_saving_one_world_keeps_the_others(tmp_path):
    path = tmp_path / "d.json"
    development.save(path, "shop", "matched", 1000, DEVELOPED)
    development.save(path, "shop", "misspecified", 1000, DEVELOPED)
    assert set(development.read(path)) == {"shop/matched/1000", "shop/misspecified/1000"}


def test_bad_records_are_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="setup"):
        development.save(tmp_path / "d.json", "shop", "matched", 1000, {"rating": {}})
    with pytest.raises(TypeError, match="cannot record set"):
        development.save(tmp_path / "d.json", "shop", "matched", 1000, {"setup": {1, 2}})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="TUNE = True"):
        development.read(tmp_path / "bad.json")

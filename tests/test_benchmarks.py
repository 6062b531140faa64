"""benchmarks/ranking.py and benchmarks/mf.py: the protocol, the JSON rows, peers optional."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "data" / "fixtures" / "ml-100k"
RANKING_KEYS = {"ndcg@10", "precision@10", "recall@10", "map@10", "fit_s", "peer", "model"}


@pytest.fixture(scope="module")
def ranking():
    import torch

    before = torch.get_num_threads()
    from benchmarks import ranking as module

    module.threads(1)
    yield module
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bench_mf():
    from benchmarks import mf

    return mf


def test_synthetic_interactions_have_the_promised_shape(ranking):
    df = ranking.synthetic_interactions(0, n_users=100, n_items=150, n_interactions=4000)
    per_user = df.groupby("user_id").size()
    assert per_user.min() >= 20 and not df.duplicated(["user_id", "item_id"]).any()
    assert set(df["rating"].unique()) <= {1, 2, 3, 4, 5}
    assert df["item_id"].max() < 150


def test_ranking_protocol_orders_the_models_and_writes_rows(ranking, tmp_path, capsys):
    df = ranking.interactions(
        ranking.synthetic_interactions(1, n_users=150, n_items=200, n_interactions=6000)
    )
    models = [m for m in ranking.models(False, True, 5) if not m.peer]

    def broken(train, n_users, n_items, seed):
        raise RuntimeError("peer crashed")

    models.append(ranking.Model("broken peer", broken, peer=True))
    comparison, failed = ranking.run_benchmark(df, 150, 200, models, seeds=(0, 1))
    assert failed == {"broken peer": "RuntimeError: peer crashed"}
    assert "broken peer" not in comparison.models
    ndcg = {m: comparison.interval(m, "ndcg@10").mean for m in comparison.models}
    assert ndcg["EASE (l2=200)"] > ndcg["popularity"] + 0.05
    assert ndcg["iALS (recbook)"] > ndcg["popularity"] + 0.05
    assert ndcg["recbook best: EASE, l2 on validation"] > ndcg["popularity"] + 0.05
    rows = ranking.result_rows(comparison, models, "SYNTHETIC", "per-user 75/25")
    assert all(RANKING_KEYS <= set(r) and r["peer"] is False for r in rows)
    assert all(r["ndcg@10_lo"] <= r["ndcg@10"] <= r["ndcg@10_hi"] for r in rows)
    ranking.print_table(comparison)
    assert "Bayesian MF, ranked by rating" in capsys.readouterr().out


def test_ranking_main_on_official_format_files(ranking, bench_mf, tmp_path, monkeypatch, capsys):
    # data/fixtures/ml-100k has 10 items, too few for a top-10: write a larger copy
    df, _ = bench_mf.synthetic_movielens(0, n_users=60, n_items=120, n_ratings=2000)
    folder = bench_mf.write_movielens_100k(df, str(tmp_path / "ml-100k"))
    monkeypatch.setattr(ranking, "installed", lambda module: False)
    out = tmp_path / "ranking.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the copy is unverified, by design
        code = ranking.main(["--path", folder, "--seeds", "2", "--no-two-tower", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "ALS (implicit): not installed" in printed and "BiVAE (cornac): not installed" in printed
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "ranking" and doc["machine"]["cpu_cores"] >= 1 and doc["date"]
    assert {r["model"] for r in doc["rows"]} >= {"popularity", "EASE (l2=200)", "BPR (recbook)"}
    assert all(RANKING_KEYS <= set(r) and r["dataset"] == "movielens-100k" for r in doc["rows"])


def test_ranking_needs_data_or_self_test(ranking):
    with pytest.raises(SystemExit):
        ranking.main([])
    with pytest.raises(SystemExit):
        ranking.main(["--self-test", "--seeds", "1"])


def test_ranking_refuses_a_catalogue_smaller_than_the_top_k(ranking):
    df = ranking.interactions(
        ranking.synthetic_interactions(0, n_users=30, n_items=10, n_interactions=600)
    )
    with pytest.raises(ValueError, match="too small"):
        ranking.run_benchmark(df, 30, 10, ranking.models(False, True, 5)[:1])


def test_choose_ease_l2_uses_only_the_training_part(ranking):
    df = ranking.interactions(
        ranking.synthetic_interactions(2, n_users=100, n_items=120, n_interactions=4000)
    )
    best, scores = ranking.choose_ease_l2(df, 100, 120, seed=0, grid=(10.0, 100.0))
    assert best in (10.0, 100.0) and list(scores.index) == [10.0, 100.0]
    assert np.isfinite(scores).all()


def test_mf_all_folds_writes_mean_and_sd(bench_mf, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_mf, "installed", lambda module: False)
    out = tmp_path / "mf.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert bench_mf.main(["--path", str(FIXTURE), "--all-folds", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Surprise SVD, SVD++: not installed" in printed
    assert "mean ± sd over the folds" in printed
    rows = json.loads(out.read_text())["rows"]
    default = next(r for r in rows if r["model"].startswith("recbook default"))
    assert default["n_splits"] == 5 and default["split"] == "u1, u2, u3, u4, u5"
    assert "rmse_sd" in default and default["peer"] is False


def test_mf_synthetic_folds_are_disjoint(bench_mf, tmp_path):
    df, floor = bench_mf.synthetic_movielens(0, n_users=60, n_items=800, n_ratings=2000)
    folder = Path(bench_mf.write_movielens_100k(df, str(tmp_path / "ml-100k")))
    tests = [(folder / f"u{k}.test").read_text().splitlines() for k in range(1, 6)]
    assert sum(len(t) for t in tests) == len(df)
    assert len(set().union(*map(set, tests))) == len(df)
    base = set((folder / "u3.base").read_text().splitlines())
    assert not base & set(tests[2]) and len(base) + len(tests[2]) == len(df)
    assert 0 < floor < 1.5


def test_mf_peer_failure_is_reported_not_fatal(bench_mf, capsys):
    df, _ = bench_mf.synthetic_movielens(0, n_users=60, n_items=800, n_ratings=2000)
    train, test = df.iloc[:1600], df.iloc[1600:]

    def broken(*args):
        raise RuntimeError("no")

    models = bench_mf.models(peers=False) + [("broken", True, broken)]
    found = bench_mf.run(train, test, 60, 800, "SYNTHETIC", models)
    assert "broken" not in found and "global mean" in found
    assert "broken: failed (RuntimeError: no); left out" in capsys.readouterr().out


def test_install_check_picks_the_wheel_pip_would_and_names_what_is_missing():
    from benchmarks import install

    linux, mac, windows = (
        next(t for t in install.TARGETS if t.platform.startswith(p) and t.python == "3.11")
        for p in ("Linux", "macOS", "Windows")
    )
    files = [
        {"filename": "x-1.0-cp311-cp311-macosx_11_0_arm64.whl", "size": 3},
        {"filename": "x-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "size": 5},
        {"filename": "x-1.0.tar.gz", "size": 1},
    ]
    assert install.best_wheel(files, linux)["size"] == 5
    assert install.best_wheel(files, mac)["size"] == 3
    assert install.best_wheel(files, windows) is None  # an sdist is not a wheel
    pure = [{"filename": "y-2.0-py3-none-any.whl", "size": 7}]
    rows = install.check({"x": "1.0", "y": "2.0"}, {"x": files, "y": pure})
    by = {(r["platform"], r["python"]): r for r in rows}
    assert by[(windows.platform, "3.11")]["without_wheel"] == "x==1.0"
    assert by[(linux.platform, "3.11")]["without_wheel"] == "none"
    assert by[(linux.platform, "3.11")]["download_mb"] == 0  # 12 bytes round to 0 MB


def test_install_reads_exact_pins_only(tmp_path):
    from benchmarks import install

    path = tmp_path / "constraints.txt"
    path.write_text("# c\ntorch==2.13.0+cpu\nnumpy==2.4.6 ; python_version >= '3.11'\nfoo>=1\n")
    assert install.pins(path) == {"torch": "2.13.0", "numpy": "2.4.6"}


def test_item_models_are_tuned_on_the_training_part_with_ease_budget(ranking):
    df = ranking.interactions(
        ranking.synthetic_interactions(2, n_users=100, n_items=120, n_interactions=4000)
    )
    budget = len(ranking.EASE_GRID)
    for name, (_, grid) in ranking.ITEM_MODELS.items():
        assert len(grid) == budget
        tuned = ranking.tune_item_model(name, df, 100, 120, seed=0)
        assert tuned.config in grid and np.isfinite(tuned.ndcg) and tuned.search_s > 0
        # validation is carved from the data given (train), and none of it is fitted on
        both = len(tuned.val_part) + len(tuned.val)
        assert both == len(df) and tuned.val_scores.shape == (100, 120)
        assert ranking.tune_item_model(name, df, 100, 120, seed=0) is tuned  # memoised
    ranking._TUNED.clear()


def test_blend_row_counts_the_searches_it_reuses(ranking):
    df = ranking.interactions(
        ranking.synthetic_interactions(3, n_users=80, n_items=100, n_interactions=3000)
    )
    score = ranking._blend(df, 80, 100, 0)
    searched = sum(t.search_s for t in ranking._TUNED.values())
    assert score.search_s == pytest.approx(searched) and score().shape == (80, 100)
    ranking._TUNED.clear()


def test_ranking_main_restores_the_progress_bars(ranking):
    from recbook import evaluation

    bars = evaluation.tqdm
    with pytest.raises(SystemExit):
        ranking.main([])
    assert evaluation.tqdm is bars

"""recbook.checks: every check accepts good input unchanged and refuses bad input by name."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from recbook import checks, columns


def test_frame_accepts_a_frame_with_the_columns():
    df = pd.DataFrame({"a": [1], "b": [2]})
    assert checks.frame(df, ("a",)) is df


def test_frame_refuses_other_types_and_missing_columns():
    with pytest.raises(TypeError, match="ratings: expected a pandas DataFrame, got dict"):
        checks.frame({"a": [1]}, (), "ratings")
    with pytest.raises(KeyError, match=r"lacks column\(s\) \['c'\]"):
        checks.frame(pd.DataFrame({"a": [1]}), ("a", "c"))


def test_non_empty():
    df = pd.DataFrame({"a": [1]})
    assert checks.non_empty(df) is df
    with pytest.raises(ValueError, match="train is empty"):
        checks.non_empty(df.iloc[:0], "train")


def test_ids_accepts_whole_numbers_in_range():
    out = checks.ids(np.array([0.0, 2.0, 1.0]), 3)
    assert out.dtype == np.int64 and out.tolist() == [0, 2, 1]
    assert checks.ids([], 3).dtype == np.int64
    assert checks.ids(np.array([4], dtype=np.uint8), 5).tolist() == [4]


@pytest.mark.parametrize(
    "values, match",
    [
        (np.zeros((2, 2), dtype=int), "1-D"),
        (np.array(["a", "b"]), "integer ids"),
        (np.array([True, False]), "integer ids"),
        (np.array([0.5]), "whole-number"),
        (np.array([np.nan]), "whole-number"),
        (np.array([np.inf]), "whole-number"),
        (np.array([-1, 0]), r"0\.\.2, found -1\.\.0"),
        (np.array([0, 3]), r"0\.\.2, found 0\.\.3"),
    ],
)
def test_ids_refuses(values, match):
    with pytest.raises(ValueError, match=match):
        checks.ids(values, 3, "items")


def test_id_columns_checks_both_columns():
    df = pd.DataFrame({columns.USER: [0, 1], columns.ITEM: [2, 0]})
    u, i = checks.id_columns(df, 2, 3, "train")
    assert u.tolist() == [0, 1] and i.tolist() == [2, 0]
    with pytest.raises(ValueError, match=r"train\['item_id'\] must lie in 0\.\.1"):
        checks.id_columns(df, 2, 2, "train")
    with pytest.raises(KeyError, match="train lacks"):
        checks.id_columns(df.rename(columns={columns.USER: "u"}), 2, 3, "train")


def test_finite_array():
    assert checks.finite_array([1, 2], "x").dtype == float
    for bad in ([1, np.nan], [np.inf], [-np.inf]):
        with pytest.raises(ValueError, match="x contains NaN or infinity"):
            checks.finite_array(bad, "x")


def test_same_shape():
    checks.same_shape(np.zeros((2, 3)), np.ones((2, 3)), "rmse")
    with pytest.raises(ValueError, match=r"rmse: shapes differ, \(2, 3\) vs \(3, 2\)"):
        checks.same_shape(np.zeros((2, 3)), np.zeros((3, 2)), "rmse")


def test_binary_labels():
    assert checks.binary_labels([True, False, 1, 0]).tolist() == [1, 0, 1, 0]
    for bad in ([0, 2], [-1, 1], [0.5], [np.nan]):
        with pytest.raises(ValueError, match="labels must be 0/1"):
            checks.binary_labels(bad)


def test_probabilities():
    assert checks.probabilities([0, 0.5, 1]).tolist() == [0, 0.5, 1]
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        checks.probabilities([1.5])
    with pytest.raises(ValueError, match="must lie in"):
        checks.probabilities([-0.1])
    with pytest.raises(ValueError, match="NaN or infinity"):
        checks.probabilities([np.nan])


def test_integer():
    assert checks.integer(np.int32(3), "n") == 3
    assert checks.integer(3, "n", minimum=3, maximum=3) == 3
    for bad in (1.5, 2.0, "3", True, None):
        with pytest.raises(TypeError, match="n must be an integer"):
            checks.integer(bad, "n")
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        checks.integer(0, "n", minimum=1)
    with pytest.raises(ValueError, match="n must be <= 5, got 6"):
        checks.integer(6, "n", maximum=5)


def test_seed():
    assert checks.seed(0) == 0
    with pytest.raises(ValueError, match="seed must be >= 0"):
        checks.seed(-1)
    with pytest.raises(TypeError, match="seed must be an integer"):
        checks.seed(1.5)


def test_number():
    assert checks.number(np.float32(1), "lr", positive=True) == 1.0
    assert checks.number(0, "reg", non_negative=True) == 0.0
    assert checks.number(0.5, "q", below=1) == 0.5
    for bad in ("1", True, None):
        with pytest.raises(TypeError, match="lr must be a number"):
            checks.number(bad, "lr")
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="lr must be a finite number"):
            checks.number(bad, "lr")
    with pytest.raises(ValueError, match="lr must be > 0"):
        checks.number(0, "lr", positive=True)
    with pytest.raises(ValueError, match="reg must be >= 0"):
        checks.number(-1e-9, "reg", non_negative=True)
    with pytest.raises(ValueError, match="q must be < 1"):
        checks.number(1, "q", below=1)


def test_fraction():
    assert checks.fraction(0.2, "test_size") == 0.2
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match="test_size must be strictly between 0 and 1"):
            checks.fraction(bad, "test_size")
    with pytest.raises(ValueError, match="finite"):
        checks.fraction(math.nan, "test_size")


def test_epsilon():
    assert checks.epsilon(1.0) == 1.0
    assert checks.epsilon(0, allow_zero=True) == 0.0
    with pytest.raises(ValueError, match="epsilon must be a finite number > 0"):
        checks.epsilon(0)
    with pytest.raises(ValueError, match=">= 0"):
        checks.epsilon(-1, allow_zero=True)
    with pytest.raises(ValueError, match="finite"):
        checks.epsilon(math.nan)


def test_delta():
    assert checks.delta(1e-5) == 1e-5
    assert checks.delta(1e-5, n=1000) == 1e-5
    for bad in (0, 1, 2, -0.5):
        with pytest.raises(ValueError, match=r"delta must be in \(0, 1\)"):
            checks.delta(bad)
    with pytest.raises(ValueError, match="must be < 1/n"):
        checks.delta(0.01, n=1000)
    with pytest.raises(ValueError, match="finite"):
        checks.delta(math.nan)


def test_one_of():
    assert checks.one_of("als", ("als", "sgd"), "model") == "als"
    with pytest.raises(ValueError, match=r"unknown model 'x'; use one of \('als', 'sgd'\)"):
        checks.one_of("x", ("als", "sgd"), "model")


def test_no_extra():
    checks.no_extra({}, "fit")
    with pytest.raises(TypeError, match=r"fit got unexpected argument\(s\) \['a', 'b'\]"):
        checks.no_extra({"b": 1, "a": 2}, "fit")


def test_column_constants_are_the_shop_names():
    names = (columns.USER, columns.ITEM, columns.RATING, columns.TIMESTAMP, columns.EVENT)
    assert names == ("user_id", "item_id", "rating", "timestamp", "event")
    assert (columns.LABEL, columns.PREDICTION) == ("label", "prediction")


def test_complete_names_the_column_and_rows():
    df = pd.DataFrame(
        {"user_id": [1.0, np.nan, 2.0, np.inf], "t": [1, 2, 3, 4]}, index=[5, 6, 7, 8]
    )
    with pytest.raises(ValueError, match=r"df\['user_id'\] has 2 missing .* rows \[6, 8\]"):
        checks.complete(df, ["t", "user_id"])
    assert checks.complete(df, ["t"]) is df
    when = pd.DataFrame({"t": pd.to_datetime(["2020-01-01", None])})
    with pytest.raises(ValueError, match=r"'t'\] has 1 missing"):
        checks.complete(when, ["t"])


def test_memory_refuses_above_the_limit_and_names_the_estimate():
    checks.memory(10, None, "x", "batch")
    with pytest.raises(
        ValueError, match=r"x would need about 8.0 GiB.*batch, or raise .*max_bytes="
    ):
        checks.memory(8 * 2**30, None, "x", "batch")
    checks.memory(8 * 2**30, 9 * 2**30, "x", "batch")
    with pytest.raises(ValueError, match="max_bytes must be > 0"):
        checks.memory(1, -1, "x", "batch")


def test_exact_integers_and_at_least_one():
    assert checks.exact_integers(pd.Series([1.0, 2.0]), "id").tolist() == [1, 2]
    with pytest.raises(ValueError, match=r"id: 1 value\(s\) .* \[12345.5\] at \[1\]"):
        checks.exact_integers(pd.Series([1.0, 12345.5]), "id")
    with pytest.raises(ValueError, match="ks must be a non-empty 1-D list.*for example"):
        checks.at_least_one((), "ks", "for example (10,)")


def test_flag_instance_and_torch_device():
    assert checks.flag(np.bool_(True), "progress") is True
    for bad in ("no", 1, None):
        with pytest.raises(TypeError, match="progress must be True or False"):
            checks.flag(bad, "progress")
    assert checks.instance([1], (list, tuple), "hidden") == [1]
    with pytest.raises(TypeError, match="hidden must be an instance of list or tuple, got int"):
        checks.instance(5, (list, tuple), "hidden")
    assert str(checks.torch_device("cpu")) == "cpu"
    with pytest.raises(ValueError, match="device='gpu9' is not a torch device"):
        checks.torch_device("gpu9")


def test_finite_array_names_text_values():
    with pytest.raises(TypeError, match="rating must hold numbers"):
        checks.finite_array(np.array([1.0, "x"], dtype=object), "rating")

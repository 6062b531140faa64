"""What the ServerApp and the ClientApp share: the typed run config, a node's partition, the model.

:class:`TaskConfig` mirrors ``[tool.flwr.app.config]`` of this App's ``pyproject.toml`` one
field per key (``num-rounds`` -> ``num_rounds``). Flower hands every component the defaults
there fused with the ``--run-config`` overrides, so each key is always present: a missing or
unknown key means the ``pyproject.toml`` and this class disagree, and is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import lru_cache, partial
from typing import Any

from recbook import checks, datasets, splits
from recbook.federated import Client, partition, public_mean
from recbook.federated.flower import check_mode
from recbook.models_torch import BiasedMF

UNIT_WEIGHT = "unit-weight"  # FedAvg's weighting key under DP: every update counts the same


def _key(field_name: str) -> str:
    return field_name.replace("_", "-")


def _hint(key: str) -> str:
    return (
        f"set {key} under [tool.flwr.app.config] in the App's pyproject.toml, or override it "
        f"with flwr run <app> --run-config '{key}=<value>'"
    )


def _checked(key: str, check: Callable[[Any, str], Any], value: Any) -> Any:
    """``check(value, "run-config <key>")``; its error says how to set the key."""
    try:
        return check(value, f"run-config {key}")
    except (TypeError, ValueError) as err:
        raise type(err)(f"{err}; {_hint(key)}") from None


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string (quoted in TOML), got {value!r}")
    return value


def _one_of(options: tuple) -> Callable[[Any, str], Any]:
    return lambda value, what: checks.one_of(value, options, what)


# field -> check(value, what): what each run-config value must be
_RULES: dict[str, Callable[[Any, str], Any]] = {
    "dataset": _one_of(datasets.DATASETS),
    "data_path": _text,
    "shop_scale": partial(checks.number, positive=True),
    "partition_column": _text,
    "num_partitions": partial(checks.integer, minimum=1),
    "test_size": checks.fraction,
    "seed": partial(checks.integer, minimum=0),
    "dim": partial(checks.integer, minimum=1),
    "num_rounds": partial(checks.integer, minimum=1),
    "local_epochs": partial(checks.integer, minimum=1),
    "batch_size": partial(checks.integer, minimum=0),
    "lr": partial(checks.number, positive=True),
    "l2": partial(checks.number, non_negative=True),
    "result_dir": _text,
    "dp": check_mode,
    "dp_clip": partial(checks.number, positive=True),
    "dp_noise_multiplier": partial(checks.number, non_negative=True),
    "dp_delta": partial(checks.number, non_negative=True),
}


@dataclass(frozen=True)
class TaskConfig:
    """The App's run config, typed and checked. Fields are the run-config keys with ``-``
    written ``_``; each error names the key and how to set it."""

    dataset: str  # a recbook dataset name: shop, movielens-100k, movielens-1m, online-retail
    data_path: str  # a local copy of public data; "" downloads it (must be "" for the shop)
    shop_scale: float  # the shop's size multiplier (load_shop(scale=...)); 1 for other data
    partition_column: str  # users' column whose values are the partitions (e.g. region)
    num_partitions: int  # SuperNodes taking part; the server waits for all of them
    test_size: float  # per-user share of ratings held out for federated evaluation
    seed: int  # model initialisation and local shuffling
    dim: int  # latent dimension of the biased MF
    num_rounds: int
    local_epochs: int
    batch_size: int  # 0: a node's whole partition in one batch
    lr: float
    l2: float
    result_dir: str  # where the ServerApp writes its result; "" writes nothing
    dp: str  # one of recbook.federated.flower.DP_MODES
    dp_clip: float  # the clip norm
    dp_noise_multiplier: float
    dp_delta: float  # 0: 1 / (10 x num-partitions)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = _checked(_key(f.name), _RULES[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)  # ints given for floats become floats
        if not self.partition_column:
            raise ValueError(f"run-config partition-column is empty; {_hint('partition-column')}")
        if self.dataset == "shop" and self.data_path:
            raise ValueError(
                "run-config data-path is for public data, but dataset is the generated shop: "
                'set data-path = "" (or choose a public dataset)'
            )
        if self.dataset != "shop" and self.shop_scale != 1:
            raise ValueError(
                f"run-config shop-scale = {self.shop_scale:g} applies to the shop only, but "
                f"dataset is {self.dataset!r}: set shop-scale = 1.0"
            )

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> TaskConfig:
        """The config from Flower's ``context.run_config`` (all keys of the App's
        ``pyproject.toml``, overrides applied)."""
        keys = {_key(f.name): f.name for f in fields(cls)}
        unknown = sorted(set(run_config) - set(keys))
        if unknown:
            raise ValueError(
                f"unknown run-config key(s) {unknown}: the App reads {sorted(keys)}; remove "
                "them from [tool.flwr.app.config] in the App's pyproject.toml"
            )
        missing = sorted(set(keys) - set(run_config))
        if missing:
            raise ValueError(
                f"run config lacks {missing}: add them under [tool.flwr.app.config] in the "
                "App's pyproject.toml (flwr run passes every key there to the App)"
            )
        return cls(**{keys[k]: v for k, v in run_config.items()})

    def privacy_settings(self) -> dict[str, Any]:
        """The DP settings as :func:`recbook.federated.flower.flower_privacy` takes them."""
        return {
            "noise_multiplier": self.dp_noise_multiplier, "clip_norm": self.dp_clip,
            "rounds": self.num_rounds, "delta": self.dp_delta,
        }  # fmt: skip


@lru_cache(maxsize=4)
def _load(dataset: str, data_path: str, shop_scale: float, test_size: float, seed: int):
    """The dataset and its per-user split, once per process (a node serves many messages)."""
    if dataset == "shop":
        ds = datasets.load("shop", scale=shop_scale)
    else:
        ds = datasets.load(dataset, path=data_path or None)
    train, test = splits.per_user_split(ds.ratings(), test_size=test_size, seed=seed)
    return ds, train, test


def _data(cfg: TaskConfig):
    return _load(cfg.dataset, cfg.data_path, cfg.shop_scale, cfg.test_size, cfg.seed)


def load_partition(cfg: TaskConfig, partition_id: int) -> tuple[str, Client]:
    """What SuperNode ``partition_id`` holds: its own users' train/test ratings only.

    The public dataset file stands in for each node's local database: the node derives the
    same per-user split as the notebook and keeps the rows of its own users, nothing else.
    """
    ds, train, test = _data(cfg)
    return partition(train, test, ds.users, cfg.partition_column, partition_id)


def model_fn(cfg: TaskConfig):
    """The shared model's constructor: biased MF with the public rating midpoint as ``mu``."""
    ds, _, _ = _data(cfg)
    n_users, n_items = ds.n_users, ds.n_items  # the catalogue sizes are public
    return lambda: BiasedMF(n_users, n_items, cfg.dim, global_mean=public_mean())

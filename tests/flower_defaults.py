"""The Flower App's default run config, read as Flower reads it (``[tool.flwr.app.config]`` of
``flower_app/pyproject.toml``), for the tests of the App and of recbook's statement about it."""

from __future__ import annotations

from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "flower_app"
DEFAULTS: dict = tomllib.loads((APP / "pyproject.toml").read_text())["tool"]["flwr"]["app"][
    "config"
]

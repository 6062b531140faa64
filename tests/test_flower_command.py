"""The ``flwr run`` command notebook 06 prints runs as printed, and every Flower process
recbook starts has Flower telemetry and Ray usage statistics off.

The command comes from :func:`recbook.federated.local_federation.flwr_run_command`, the one
function the notebook prints with; the test runs that string (Flower's managed local
SuperLink in simulation mode, in a throw-away Flower home). Marked ``flower``: it starts
Flower's processes.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import pytest
from flower_defaults import APP, ROOT
from recbook_flower.server_app import FINISHED

from recbook import federated as fl
from recbook.federated import local_federation as lf

FIXTURE = ROOT / "data" / "fixtures" / "ml-100k"


def _flower_installed() -> bool:
    return Path(sys.executable).with_name("flwr").exists() or bool(shutil.which("flwr"))


def test_the_printed_command_names_the_federation_size_and_the_run_config():
    cmd = lf.flwr_run_command(8, {"dataset": "shop", "partition_column": "region", "num_rounds": 2})
    words = shlex.split(cmd)
    assert words[words.index("--federation-config") + 1] == "num-supernodes=8"
    run_config = words[words.index("--run-config") + 1]
    assert run_config == 'dataset="shop" partition-column="region" num-rounds=2 num-partitions=8'
    assert "--stream" in words and words[words.index("flwr") + 1 : words.index("flwr") + 3] == [
        "run", "flower_app",
    ]  # fmt: skip
    for key, value in lf.LOCAL_RUN_ENV.items():
        assert f"{key}={value}" in words[: words.index("flwr")]
    assert lf.LOCAL_RUN_ENV["FLWR_TELEMETRY_ENABLED"] == "0"
    assert lf.LOCAL_RUN_ENV["RAY_USAGE_STATS_ENABLED"] == "0"
    with pytest.raises(ValueError, match="flwr"):
        lf.run_flwr_command("X=1 ls")


@pytest.mark.flower
def test_the_printed_command_runs_in_simulation():
    if not _flower_installed():
        pytest.skip("flwr is not installed")
    cmd = lf.flwr_run_command(
        2,
        dict(dataset="movielens-100k", data_path=str(FIXTURE), partition_column="gender",
             num_rounds=1, batch_size=4, lr=0.2, dim=3, l2=0.0),
    )  # fmt: skip
    # bounded, never skipped: Ray alone takes about a minute to start on a loaded 2-core box
    result = lf.run_flwr_command(cmd, timeout=300, cwd=APP.parent)
    assert result["returncode"] == 0, result["output"][-3000:]
    # flwr run exits 0 even when the simulation crashes: the ServerApp's last line must be there
    assert FINISHED in result["output"], result["output"][-3000:]


@pytest.mark.flower
def test_flower_processes_recbook_starts_have_telemetry_off():
    if not _flower_installed():
        pytest.skip("flwr is not installed")
    with fl.LocalFederation("simulation", 1, timeout=60, app_dir=APP) as federation:
        (link,) = federation.procs
        environ = Path(f"/proc/{link.pid}/environ").read_bytes().split(b"\0")
        assert b"FLWR_TELEMETRY_ENABLED=0" in environ
        assert b"RAY_USAGE_STATS_ENABLED=0" in environ
        assert "--insecure" not in link.args and "--ssl-certfile" in link.args  # TLS
        assert "root-certificates" in (federation.home / "config.toml").read_text()

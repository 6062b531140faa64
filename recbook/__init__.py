"""recbook: helpers shared by the recbook notebooks (data, splits, metrics, models, privacy)."""

from recbook.runtime import quiet_tensorflow as _quiet_tensorflow

_quiet_tensorflow()

from recbook.runtime import device, record, seed_everything  # noqa: E402

__all__ = ["device", "record", "seed_everything"]
__version__ = "0.1.0"

"""Column names used across recbook (the Microsoft-recommenders convention).

Every function that takes or returns a DataFrame uses these names, so a table from one module
can be handed to another unchanged. There is no per-call override: rename a foreign table's
columns to these once (``df.rename(columns={...})``) rather than threading names through
every call.
"""

from __future__ import annotations

USER = "user_id"
ITEM = "item_id"
RATING = "rating"
TIMESTAMP = "timestamp"
EVENT = "event"
LABEL = "label"
PREDICTION = "prediction"

"""Column names used across recbook (the Microsoft-recommenders convention).

Every function that takes a DataFrame uses these names as the defaults of its ``col_*``
keyword arguments, so a table from one module can be handed to another unchanged.
"""

from __future__ import annotations

USER = "user_id"
ITEM = "item_id"
RATING = "rating"
TIMESTAMP = "timestamp"
EVENT = "event"
LABEL = "label"
PREDICTION = "prediction"

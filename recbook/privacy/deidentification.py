"""Why removing names or hashing ids is not anonymisation (notebook 05): how many records a few
quasi-identifiers single out, and how a dictionary attack reverses hashed ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd


def quasi_identifier_report(
    table: pd.DataFrame, column_sets: Iterable[Sequence[str]]
) -> pd.DataFrame:
    """For each set of columns: how many records share each value combination.

    ``unique_share`` is the fraction of records alone in their group (re-identifiable by anyone
    who knows those attributes); ``k_anonymity`` is the smallest group size."""
    rows = []
    for columns in column_sets:
        columns = list(columns)
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise KeyError(f"quasi_identifier_report: no column(s) {missing} in the table")
        if table[columns].isna().any().any():
            raise ValueError(f"columns {columns} contain missing values; fill or drop them first")
        sizes = table.groupby(columns, observed=True).size()
        per_record = table.groupby(columns, observed=True)[columns[0]].transform("size")
        rows.append(
            {
                "quasi_identifiers": " + ".join(columns),
                "records": len(table),
                "groups": len(sizes),
                "unique_share": float((per_record == 1).mean()),
                "k_anonymity": int(sizes.min()),
                "median_group": float(per_record.median()),
            }
        )
    return pd.DataFrame(rows).set_index("quasi_identifiers")


def pseudonymise(ids, salt: str = "") -> np.ndarray:
    """SHA-256 pseudonyms of ids (hex). The same id always gets the same pseudonym — that is
    what makes it useful for joins, and also what lets anyone link or reverse it."""
    return np.array(
        [hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in np.asarray(ids).ravel()]
    )


def reverse_pseudonyms(pseudonyms, candidate_ids, salt: str = "") -> np.ndarray:
    """Undo :func:`pseudonymise` by hashing every candidate id (a dictionary attack); returns
    the recovered id for each pseudonym, or -1 where no candidate matched."""
    table = dict(zip(pseudonymise(candidate_ids, salt), np.asarray(candidate_ids).ravel()))
    return np.array([table.get(p, -1) for p in np.asarray(pseudonyms).ravel()])

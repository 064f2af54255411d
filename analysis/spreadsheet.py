"""CSV copies meant for spreadsheets: no cell is run as a formula.

A cell of text that starts with '=', '+', '-', '@' (or a tab or carriage return) is a formula to
Excel, LibreOffice and Google Sheets: an answer typed as `=cmd|' /C calc'!A0` or an experimenter
id `=HYPERLINK(...)` would run or link when the CSV is opened. `neutralise` puts an apostrophe
in front of such text cells (the OWASP advice; spreadsheets show the text, without the
apostrophe). Numbers are never touched, so -0.5 stays a number. Only the analysis CSVs get this:
the raw BIDS TSVs and the Parquet copies keep the exact text.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of `df` in which every text cell that a spreadsheet would read as a formula starts
    with an apostrophe; `df` itself is unchanged."""
    out = None
    for col in df.columns:
        s = df[col]
        if not (s.dtype == object or pd.api.types.is_string_dtype(s.dtype)):
            continue
        # judged once per distinct value: a 500,000-row trials table has few distinct texts
        codes, uniques = pd.factorize(s, use_na_sentinel=True)
        risky_value = np.array([isinstance(v, str) and v.startswith(FORMULA_STARTS) for v in uniques] + [False])
        risky = pd.Series(risky_value[codes], index=s.index)      # code -1 (missing) -> the last, False
        if risky.any():
            if out is None:
                out = df.copy()
            out[col] = s.where(~risky, "'" + s.astype(str))
    return df if out is None else out

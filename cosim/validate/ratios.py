"""Hardware ratios: the same query measured on two chips, per chip, against cosim's ratio.

A row's error mixes what cosim gets wrong about a chip with what it gets wrong about the query (an estimated
dataset length, a serving stack's kernels, a layout). Two rows that ask the same query from the same source on
different chips share the second kind, so the error of their per-chip ratio isolates the first: how well
cosim scales from one chip to another. The absolute calibration cannot hide a wrong ratio.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

#: metrics whose rows are throughputs of one query (energy rows have their own fits and are left out)
RATIO_METRICS = ("offline_throughput", "server_throughput", "per_user_decode")
COLUMNS = ["query", "faster", "slower", "rows", "measured_ratio", "predicted_ratio", "error"]


def query_key(row_id: str) -> str | None:
    """What two rows must share to be the same query: workload, metric, lengths, latency bounds, speculative
    drafts and stack (the source class is added by `hardware_ratios`)."""
    from cosim.validate.runner import query_for

    try:
        q = query_for(row_id)
    except KeyError:  # a row id the mapping does not know has no query to compare
        return None
    lengths = q.profile or f"{q.input_len}/{q.output_len}"
    slo = f" SLO {q.slo_ttft_s:g} s/{q.slo_tpot_s:g} s" if q.slo_ttft_s or q.slo_tpot_s else ""
    batch = f" batch {q.batch}" if q.batch else ""
    drafts = f" drafts {q.draft_tokens} accepting {q.accepted_tokens_per_step:g}" if q.draft_tokens else ""
    return f"{q.workload} {q.kind} {lengths}{batch}{slo}{drafts} ({q.stack})"


def hardware_ratios(rows: pd.DataFrame, keys: dict[str, str | None] | None = None) -> pd.DataFrame:
    """One line per pair of chips that answered the same query from the same source class: the measured and
    predicted per-chip ratio (faster chip over slower, by measurement) and the ratio's error (predicted /
    measured - 1). Rows of one chip and query are pooled by geometric mean. `keys` maps row id to query key
    (default: `query_key` from the mapping)."""
    need = {"id", "hardware", "chips", "metric", "source_class", "predicted", "measured"}
    if rows.empty or not need <= set(rows.columns):
        return pd.DataFrame(columns=COLUMNS)
    t = rows[rows["metric"].isin(RATIO_METRICS)].copy()
    t = t[np.isfinite(t["predicted"].astype(float)) & (t["predicted"].astype(float) > 0)
          & (t["measured"].astype(float) > 0)]
    if t.empty:
        return pd.DataFrame(columns=COLUMNS)
    t["query"] = [keys.get(i) if keys is not None else query_key(i) for i in t["id"]]
    t = t[t["query"].notna()]
    t["query"] = t["query"] + " / " + t["source_class"].astype(str)
    t["log_meas"] = np.log(t["measured"].astype(float) / t["chips"].astype(float))
    t["log_pred"] = np.log(t["predicted"].astype(float) / t["chips"].astype(float))
    per_chip = t.groupby(["query", "hardware"]).agg(log_meas=("log_meas", "mean"), log_pred=("log_pred", "mean"),
                                                    rows=("id", "size")).reset_index()
    out = []
    for query, grp in per_chip.groupby("query", sort=True):
        grp = grp.sort_values("log_meas", ascending=False)
        for a, b in itertools.combinations(grp.itertuples(index=False), 2):
            meas = float(np.exp(a.log_meas - b.log_meas))
            pred = float(np.exp(a.log_pred - b.log_pred))
            out.append({"query": query, "faster": a.hardware, "slower": b.hardware, "rows": int(a.rows + b.rows),
                        "measured_ratio": meas, "predicted_ratio": pred, "error": pred / meas - 1.0})
    return pd.DataFrame(out, columns=COLUMNS)

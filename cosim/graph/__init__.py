"""Operator graphs: a workload under a scenario as an `OpTable` (columns, one row per op, repeat counts).

`build.py` holds the public builders; `decoder.py`, `attention.py` and `moe.py` the decoder-LM ops,
`video.py` the text-to-video pipeline, `sharding.py` the parallelism rules, `rows.py` the per-row
FLOP and byte conventions.
"""

from cosim.graph.build import (
    build_graph,
    decode_graph,
    pipeline_stages,
    prefill_graph,
    train_graph,
    video_graph,
    weight_bytes_per_chip,
)
from cosim.graph.optable import CommKind, OpKind, OpTable, Stage

__all__ = [
    "CommKind", "OpKind", "OpTable", "Stage", "build_graph", "decode_graph", "pipeline_stages", "prefill_graph",
    "train_graph", "video_graph", "weight_bytes_per_chip",
]

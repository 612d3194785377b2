"""OpTable: a workload under a scenario as columns, one row per distinct op, with a repeat count.

All quantities are per chip, after sharding, for one execution of the op; `repeat` says how many
times the op runs in the step (e.g. once per layer x layers on this pipeline stage x denoising
steps). Totals are `sum(column * repeat)`. Everything downstream is vectorised over rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import IntEnum

import numpy as np
import pandas as pd

from cosim.specs.hardware import PRECISIONS


class OpKind(IntEnum):
    GEMM = 0
    GROUPED_GEMM = 1  # MoE experts: `groups` GEMMs of (m, k, n) each
    ATTENTION = 2  # fused (Flash) attention: QK^T, softmax, PV
    ELEMENTWISE = 3  # activations, residual adds, rotary, norms, softmax outside attention
    EMBEDDING = 4  # table lookup (gathers rows; reads batch x hidden, not the table)
    COMM = 5  # a collective or point-to-point transfer


class CommKind(IntEnum):
    NONE = 0
    ALL_REDUCE = 1
    ALL_GATHER = 2
    REDUCE_SCATTER = 3
    ALL_TO_ALL = 4
    P2P = 5


class Stage(IntEnum):
    """Which part of a workload an op belongs to (video models have three; a multimodal LM's image encoder
    is its own)."""

    DECODER = 0
    TEXT_ENCODER = 1
    DIT = 2
    VAE = 3
    LM_HEAD = 4
    OPTIMIZER = 5
    VISION_ENCODER = 6
    DRAFT = 7  # the multi-token-prediction module drafting tokens for a speculative decode step


PRECISION_CODE: dict[str, int] = {p: i for i, p in enumerate(PRECISIONS)}

_INT_COLUMNS = ("kind", "comm_kind", "comm_group", "precision", "weight_precision", "stage", "causal", "fused")
_FLOAT_COLUMNS = (
    "m", "k", "n", "groups",
    "batch", "heads", "kv_heads", "q_len", "kv_len", "head_dim", "head_dim_v", "window",
    "flops", "bytes_weight", "bytes_act_in", "bytes_act_out", "bytes_kv_read", "bytes_kv_write",
    "comm_bytes", "repeat", "m_prompt", "m_prompt_step", "work_share",
)


@dataclass
class OpTable:
    """Struct of arrays. Float columns are float64 (counts may exceed 2**53 only in FLOPs, fine in fp64).

    Columns:
      kind, stage, precision (index into PRECISIONS: what the op computes in), weight_precision (the
      stored weights' format; narrower than `precision` for weight-only quantisation, W4A16), fused (1 = assumed fused into a neighbour: no
      launch and no separate memory traffic beyond what is listed), causal (attention).
      m, k, n, groups: GEMM shape per group; grouped GEMM has `groups` GEMMs.
      batch, heads, kv_heads, q_len, kv_len, head_dim, head_dim_v, window: attention geometry
      (window = 0 for full attention).
      flops: per execution on one chip. bytes_*: bytes read/written per execution on one chip by class.
      comm_bytes: bytes each chip sends (payload size of the collective's buffer per chip);
      comm_kind/comm_group: which collective and among how many chips.
      repeat: executions per step on one chip.
      m_prompt, m_prompt_step: for a continuous-batching step's GEMMs, whose `m` is an average over steps,
      the mean prompt rows in `m` and the rows one prompt adds to a step that carries it: the steps alternate
      between m - m_prompt + k x m_prompt_step rows for the two k around m_prompt / m_prompt_step, each
      padded to its own tile (0, 0: every execution has `m` rows).
      work_share: the mean chip's work in this op over the work the row describes (1: every chip does the
      same). A row of the busiest rank (an expert-parallel group touching more experts than the mean) sets
      the step's time at its own work, while the energy counts the chips' mean work.
    """

    name: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))
    kind: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    stage: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    precision: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    weight_precision: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    fused: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    causal: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    comm_kind: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    comm_group: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    m: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    k: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    n: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    groups: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    batch: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    heads: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    kv_heads: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    q_len: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    kv_len: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    head_dim: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    head_dim_v: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    window: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    flops: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    bytes_weight: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    bytes_act_in: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    bytes_act_out: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    bytes_kv_read: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    bytes_kv_write: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    comm_bytes: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    repeat: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    m_prompt: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    m_prompt_step: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    work_share: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))

    def __len__(self) -> int:
        return len(self.kind)

    @classmethod
    def from_rows(cls, rows: list[dict]) -> OpTable:
        """Build from a list of dicts (missing numeric keys are 0; `repeat` defaults to 1)."""
        data: dict[str, np.ndarray] = {"name": np.array([r["name"] for r in rows], dtype=object)}
        for col in _INT_COLUMNS:
            # weights are stored in the compute precision unless a row says otherwise
            fallback = "precision" if col == "weight_precision" else None
            data[col] = np.array([int(r.get(col, r.get(fallback, 0))) for r in rows], dtype=np.int64)
        for col in _FLOAT_COLUMNS:
            default = 1.0 if col in ("repeat", "groups", "work_share") else 0.0
            data[col] = np.array([float(r.get(col, default)) for r in rows], dtype=np.float64)
        return cls(**data)

    @classmethod
    def concat(cls, tables: list[OpTable]) -> OpTable:
        return cls(**{f.name: np.concatenate([getattr(t, f.name) for t in tables]) for f in fields(cls)})

    def select(self, mask: np.ndarray) -> OpTable:
        return OpTable(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    def with_repeat(self, factor: float) -> OpTable:
        """The same ops run `factor` times as often (e.g. x denoising steps)."""
        out = OpTable(**{f.name: getattr(self, f.name).copy() for f in fields(self)})
        out.repeat = out.repeat * factor
        return out

    @property
    def bytes_total(self) -> np.ndarray:
        """Main-memory bytes per execution if nothing stays on chip."""
        return (self.bytes_weight + self.bytes_act_in + self.bytes_act_out
                + self.bytes_kv_read + self.bytes_kv_write)

    def total(self, column: str) -> float:
        """Sum of a per-execution column times `repeat` over all ops (per chip per step)."""
        return float(np.sum(getattr(self, column) * self.repeat))

    def to_frame(self) -> pd.DataFrame:
        df = pd.DataFrame({f.name: getattr(self, f.name) for f in fields(self)})
        df["kind"] = [OpKind(k).name.lower() for k in self.kind]
        df["stage"] = [Stage(s).name.lower() for s in self.stage]
        df["comm_kind"] = [CommKind(c).name.lower() for c in self.comm_kind]
        df["precision"] = [PRECISIONS[p] for p in self.precision]
        df["weight_precision"] = [PRECISIONS[p] for p in self.weight_precision]
        return df

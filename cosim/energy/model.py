"""Joules and watts of one step under a TDP cap, at three boundaries (accelerator, system, facility).

Per chip and per step:

    E_dyn   = sum_p FLOPs[p] * e_flop[p] + bytes_main * e_main + bytes_onchip * e_sram
              + comm_up * e_up + comm_out * e_out
    P       = E_dyn / t + P_static;  if P > TDP the clock derates: t' = E_dyn / (TDP - P_static)
    E_acc   = E_dyn + P_static * t'          (accelerators only)
    E_sys   = E_acc * (1 + h_host)  or  E_acc + P_host_per_chip * t'
    E_fac   = E_sys * PUE

`e_flop[p]` is Horowitz's 45 nm FMA energy / 2 plus operand delivery ((k_deliver - 1) x the BF16 datapath
energy x operand bits / 16, `k_deliver` fitted per chip family on BF16 rows in
cosim/data/energy_calibration.yaml), times the logic node factor of the chip's process; delivery moves bits,
so an FP8 or FP4 GEMM at its (2x, 4x) peak rate draws about the power of a BF16 GEMM at its peak;
the whole-chip TDP / peak figure is an upper bound, never the default. `e_main` is the DRAM pJ/bit
(the spec's main-memory `energy_j_per_byte`, else the default by memory kind) times a fitted on-chip
delivery factor `mem_path_factor`. Static power is the spec's `energy.static_power_w`, else the
family's fitted fraction of TDP, else the spec's idle power, else a default fraction of TDP.

Two corrections keep busy silicon from being charged as idle: a compute-bound matrix op (GEMM, MoE expert
GEMM, fused attention) draws the power of a GEMM for as long as it runs (the engine's `energy_flops_by_precision`,
`cosim.engines.estimate.busy_energy_flops`; `_with_busy_kernels`), and a video DiT's sequence-parallel
exchange, like a serving stack's unpriced GPU work per running sequence (`busy_sequence_time_s`), the dynamic
power of the rest of its step (`_with_busy_exchange`); both stop at the TDP without a further derate.

The derate keeps dynamic energy fixed and stretches time (a real part would also lower voltage, so
this is conservative). `step_energy_arrays` is the vectorised form for sweeps over N design points;
`step_energy` is the N = 1 convenience wrapper returning an `EnergyBreakdown`.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from cosim.energy import defaults as D
from cosim.errors import CosimInputError
from cosim.specs.hardware import PRECISIONS, Hardware

#: Extra keys accepted in `flops_by_precision` and the precision they are charged at.
FLOP_ALIASES = {"vector": "fp32"}


@dataclass(frozen=True)
class EnergyParams:
    """Per-chip energy coefficients (SI units) and where each came from (`provenance`)."""

    tdp_w: float
    static_power_w: float
    j_per_flop: dict[str, float]
    mem_j_per_byte: float
    onchip_j_per_byte: float
    scale_up_j_per_byte: float
    scale_out_j_per_byte: float
    host_overhead_fraction: float
    host_w_per_chip: float | None = None
    pue: float = 1.2
    family: str | None = None
    provenance: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.tdp_w > 0:
            raise CosimInputError(f"TDP must be > 0 W, got {self.tdp_w}", field="power.tdp_w")
        if not 0 <= self.static_power_w < self.tdp_w:
            raise CosimInputError(
                f"static power {self.static_power_w:g} W must be >= 0 and below the TDP ({self.tdp_w:g} W)",
                field="energy.static_power_w")
        if self.pue < 1:
            raise CosimInputError(f"PUE must be >= 1, got {self.pue:g}", field="pue")
        if self.host_overhead_fraction < 0:
            raise CosimInputError("host overhead must be >= 0", field="system.host_overhead_fraction")

    @classmethod
    def from_hardware(cls, hw: Hardware, *, pue: float | None = None,
                      host_overhead_fraction: float | None = None,
                      use_calibration: bool = True) -> EnergyParams:
        """Coefficients for `hw`: spec overrides, then the chip family's fit, then defaults."""
        nm = float(hw.process_node_nm.value)
        prov: dict[str, str] = {}
        fam_name, fam = family_params(hw.name) if use_calibration else (None, None)
        if fam is None:
            fam = _uncalibrated()
            prov["calibration"] = "uncalibrated family: geometric mean of the fitted families"
        else:
            prov["calibration"] = f"family {fam_name} (energy_calibration.yaml)"
        k = float(fam["k_deliver"])
        node = float(D.node_factor(nm))
        j_per_flop = {}
        for p in PRECISIONS:
            override = hw.energy.energy_j_per_flop.get(p)
            if override is not None:
                j_per_flop[p] = override.value
                prov[f"j_per_flop.{p}"] = f"spec ({override.source})"
            else:
                j_per_flop[p] = D.delivered_flop_energy_45nm_j(p, k) * node
                prov[f"j_per_flop.{p}"] = (f"Horowitz 45 nm datapath + operand delivery (k_deliver {k:.3g}, "
                                           f"{D.operand_bits(p):g}-bit operands) x node factor {node:.3g}")

        main = hw.main_memory
        path = float(fam["mem_path_factor"])
        if main.energy_j_per_byte is not None:
            dram = main.energy_j_per_byte.value
            prov["mem_j_per_byte"] = f"spec memory.{main.name} ({main.energy_j_per_byte.source}) x path {path:.3g}"
        else:
            dram = D.memory_energy_j_per_byte(main.kind, nm)
            prov["mem_j_per_byte"] = f"default for {main.kind} x path {path:.3g}"
        if main.kind in ("sram", "cache", "register"):
            path = 1.0  # an SRAM-only chip has no off-chip delivery path to scale
        onchip = [m for m in hw.memory[:-1] if m.kind in ("sram", "cache")]
        big = max(onchip, key=lambda m: m.capacity_bytes.value, default=None)
        if big is not None and big.energy_j_per_byte is not None:
            sram = big.energy_j_per_byte.value
            prov["onchip_j_per_byte"] = f"spec memory.{big.name}"
        else:
            sram = D.sram_energy_j_per_byte(nm)
            prov["onchip_j_per_byte"] = "Horowitz 1 MB SRAM x node factor"

        ic = hw.interconnect
        up = ic.scale_up.energy_j_per_byte.value if ic.scale_up and ic.scale_up.energy_j_per_byte else None
        out = ic.scale_out.energy_j_per_byte.value if ic.scale_out and ic.scale_out.energy_j_per_byte else None
        default_up = D.value("link_energy_pj_per_bit", "scale_up") * 8 * D.PJ
        default_out = D.value("link_energy_pj_per_bit", "scale_out") * 8 * D.PJ

        tdp = hw.power.tdp_w.value
        if hw.energy.static_power_w is not None:
            static = hw.energy.static_power_w.value
            prov["static_power_w"] = f"spec energy.static_power_w ({hw.energy.static_power_w.source})"
        elif fam_name is not None:
            static = float(fam["static_fraction_of_tdp"]) * tdp
            prov["static_power_w"] = f"family {fam_name} fit: {fam['static_fraction_of_tdp']:.3g} x TDP"
        elif hw.power.idle_w is not None:
            static = hw.power.idle_w.value
            prov["static_power_w"] = f"spec power.idle_w ({hw.power.idle_w.source})"
        else:
            static = D.value("static_power_fraction_of_tdp") * tdp
            prov["static_power_w"] = "default fraction of TDP (energy_defaults.yaml)"

        host_w = None
        if host_overhead_fraction is not None:
            host = float(host_overhead_fraction)
        elif hw.system.host_power_w_per_node is not None:
            host = 0.0
            host_w = hw.system.host_power_w_per_node.value / hw.system.chips_per_node.value
            prov["host"] = "spec system.host_power_w_per_node / chips_per_node"
        elif hw.system.host_overhead_fraction is not None:
            host = hw.system.host_overhead_fraction.value
            prov["host"] = "spec system.host_overhead_fraction"
        else:
            host = D.value("host_overhead_fraction")
            prov["host"] = "default host overhead fraction (MLPerf-derived)"
        return cls(
            tdp_w=tdp, static_power_w=static, j_per_flop=j_per_flop, mem_j_per_byte=dram * path,
            onchip_j_per_byte=sram, scale_up_j_per_byte=up if up is not None else default_up,
            scale_out_j_per_byte=out if out is not None else default_out,
            host_overhead_fraction=host, host_w_per_chip=host_w,
            pue=D.value("pue") if pue is None else float(pue), family=fam_name, provenance=prov,
        )

    def to_arrays(self, n: int = 1) -> EnergyArrays:
        """N identical design points."""
        row = np.array([self.j_per_flop[p] for p in PRECISIONS], dtype=np.float64)

        def col(v: float | None) -> np.ndarray:
            return np.full(n, np.nan if v is None else float(v), dtype=np.float64)

        return EnergyArrays(
            tdp_w=col(self.tdp_w), static_power_w=col(self.static_power_w),
            j_per_flop=np.ascontiguousarray(np.tile(row, (n, 1))), mem_j_per_byte=col(self.mem_j_per_byte),
            onchip_j_per_byte=col(self.onchip_j_per_byte), scale_up_j_per_byte=col(self.scale_up_j_per_byte),
            scale_out_j_per_byte=col(self.scale_out_j_per_byte),
            host_overhead_fraction=col(self.host_overhead_fraction), host_w_per_chip=col(self.host_w_per_chip),
            pue=col(self.pue),
        )


@dataclass
class EnergyArrays:
    """Energy coefficients of N design points; `j_per_flop` is (N, len(PRECISIONS)).

    `host_w_per_chip` is NaN where the system boundary uses `host_overhead_fraction` instead.
    """

    tdp_w: np.ndarray
    static_power_w: np.ndarray
    j_per_flop: np.ndarray
    mem_j_per_byte: np.ndarray
    onchip_j_per_byte: np.ndarray
    scale_up_j_per_byte: np.ndarray
    scale_out_j_per_byte: np.ndarray
    host_overhead_fraction: np.ndarray
    host_w_per_chip: np.ndarray
    pue: np.ndarray

    def __len__(self) -> int:
        return len(self.tdp_w)

    @classmethod
    def from_hardware_arrays(cls, hwa, base: EnergyParams, *, k_deliver: float | None = None,
                             static_fraction_of_tdp: float | None = None) -> EnergyArrays:
        """Coefficients for a sweep (`cosim.engines.hwarrays.HardwareArrays`) around `base`.

        Swept `tdp_w` and `process_node_nm` re-derive static power (as base's fraction of TDP unless
        given) and per-FLOP energy (node-scaled); a swept main-memory `mem_energy_j_per_byte`
        replaces the DRAM energy (times base's path factor, when base's DRAM figure is known).
        """
        n = len(hwa)
        out = base.to_arrays(n)
        frac = base.static_power_w / base.tdp_w if static_fraction_of_tdp is None else static_fraction_of_tdp
        out.tdp_w = np.asarray(hwa.tdp_w, dtype=np.float64).copy()
        out.static_power_w = frac * out.tdp_w
        k = k_deliver if k_deliver is not None else _base_k(base)
        e45 = D.delivered_flop_energy_45nm_j_array(k)
        node = np.asarray(D.node_factor(np.asarray(hwa.process_node_nm, dtype=np.float64)))
        out.j_per_flop = np.ascontiguousarray(node[:, None] * e45[None, :])
        mem = np.asarray(hwa.mem_energy_j_per_byte, dtype=np.float64)
        path = _base_path(base)
        out.mem_j_per_byte = np.where(mem > 0, mem * path, out.mem_j_per_byte)
        return out


def _base_k(base: EnergyParams) -> float:
    fam = family_params_by_name(base.family) if base.family else _uncalibrated()
    return float(fam["k_deliver"])


def _base_path(base: EnergyParams) -> float:
    fam = family_params_by_name(base.family) if base.family else _uncalibrated()
    return float(fam["mem_path_factor"])


@dataclass(frozen=True)
class EnergyBreakdown:
    """Energy of one step, per chip (J), with the TDP derate and the three boundaries.

    `accelerator_j` is the chip alone; `system_j` adds host CPUs, DRAM, NICs, fans and PSU losses;
    `facility_j` multiplies by PUE. `*_total_j` multiply by `chips`. `avg_power_w` is per chip,
    accelerator boundary, and never exceeds `tdp_w`.
    """

    compute_j: float
    memory_j: float
    onchip_j: float
    comm_j: float
    dynamic_j: float
    static_j: float
    accelerator_j: float
    system_j: float
    facility_j: float
    time_s: float
    time_s_capped: float
    derate: float
    avg_power_w: float
    tdp_w: float
    static_power_w: float
    chips: float = 1.0

    @property
    def accelerator_total_j(self) -> float:
        return self.accelerator_j * self.chips

    @property
    def system_total_j(self) -> float:
        return self.system_j * self.chips

    @property
    def facility_total_j(self) -> float:
        return self.facility_j * self.chips

    def to_dict(self) -> dict[str, float]:
        data = asdict(self)
        data.update(accelerator_total_j=self.accelerator_total_j, system_total_j=self.system_total_j,
                    facility_total_j=self.facility_total_j)
        return data


def _as_array(x, n: int, name: str) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(x, dtype=np.float64), (n,))
    if np.any(arr < 0) or np.any(np.isnan(arr)):
        raise CosimInputError(f"must be finite and >= 0, got {x!r}", field=name)
    return arr


def step_energy_arrays(params: EnergyArrays, *, flops_by_precision: dict[str, object],
                       bytes_main_memory, bytes_onchip, comm_bytes_scale_up, comm_bytes_scale_out,
                       time_s) -> dict[str, np.ndarray]:
    """Vectorised step energy for N design points; counters are per chip, broadcast to (N,).

    Returns arrays keyed like `EnergyBreakdown`'s fields (without `chips`).
    """
    n = len(params)
    compute = np.zeros(n)
    for key, flops in flops_by_precision.items():
        prec = FLOP_ALIASES.get(key, key)
        if prec not in PRECISIONS:
            raise CosimInputError(f"unknown precision '{key}'; expected one of {', '.join(PRECISIONS)}",
                                  field="flops_by_precision")
        compute = compute + _as_array(flops, n, f"flops_by_precision.{key}") * params.j_per_flop[:, PRECISIONS.index(prec)]
    memory = _as_array(bytes_main_memory, n, "bytes_main_memory") * params.mem_j_per_byte
    onchip = _as_array(bytes_onchip, n, "bytes_onchip") * params.onchip_j_per_byte
    comm = (_as_array(comm_bytes_scale_up, n, "comm_bytes_scale_up") * params.scale_up_j_per_byte
            + _as_array(comm_bytes_scale_out, n, "comm_bytes_scale_out") * params.scale_out_j_per_byte)
    t = _as_array(time_s, n, "time_s")
    dynamic = compute + memory + onchip + comm
    headroom = params.tdp_w - params.static_power_w
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t_min = np.where(dynamic > 0, dynamic / headroom, 0.0)
        t_capped = np.maximum(t, t_min)
        derate = np.where(t > 0, t_capped / t, np.where(dynamic > 0, np.inf, 1.0))
        static = params.static_power_w * t_capped
        acc = dynamic + static
        power = np.where(t_capped > 0, acc / t_capped, params.static_power_w)
    power = np.minimum(power, params.tdp_w)
    host_w = params.host_w_per_chip
    system = np.where(np.isnan(host_w), acc * (1.0 + params.host_overhead_fraction),
                      acc + np.nan_to_num(host_w) * t_capped)
    return {
        "compute_j": compute, "memory_j": memory, "onchip_j": onchip, "comm_j": comm, "dynamic_j": dynamic,
        "static_j": static, "accelerator_j": acc, "system_j": system, "facility_j": system * params.pue,
        "time_s": t.copy(), "time_s_capped": t_capped, "derate": derate, "avg_power_w": power,
        "tdp_w": params.tdp_w.copy(), "static_power_w": params.static_power_w.copy(),
    }


def step_energy(hw: Hardware | EnergyParams, *, flops_by_precision: dict[str, float],
                bytes_main_memory: float, bytes_onchip: float = 0.0, comm_bytes_scale_up: float = 0.0,
                comm_bytes_scale_out: float = 0.0, time_s: float, chips: float = 1.0) -> EnergyBreakdown:
    """Energy of one step on one chip (counters per chip); `chips` scales the `*_total_j` figures."""
    params = hw if isinstance(hw, EnergyParams) else EnergyParams.from_hardware(hw)
    cols = step_energy_arrays(
        params.to_arrays(1), flops_by_precision=flops_by_precision, bytes_main_memory=bytes_main_memory,
        bytes_onchip=bytes_onchip, comm_bytes_scale_up=comm_bytes_scale_up,
        comm_bytes_scale_out=comm_bytes_scale_out, time_s=time_s)
    names = {f.name for f in fields(EnergyBreakdown)} - {"chips"}
    return EnergyBreakdown(**{k: float(cols[k][0]) for k in names}, chips=float(chips))


def energy_for_estimate(hw: Hardware, result, params: EnergyParams | None = None) -> dict[str, float | None]:
    """The energy fields of `cosim estimate` JSON, from an engine result's per-chip step counters.

    Reads `energy_flops_by_precision` (else `flops_by_precision`), `bytes_main_memory`, `bytes_onchip`, `comm_bytes_scale_up`,
    `comm_bytes_scale_out`, `step_time_s`, `tokens_per_step` (None for video) and `chips`.
    `energy_j` is the accelerator energy of one step on all chips; per-token figures are None when
    the step produces no tokens.
    """
    params = params or EnergyParams.from_hardware(hw)
    chips = float(getattr(result, "chips", 1) or 1)
    counters = dict(bytes_main_memory=result.bytes_main_memory, bytes_onchip=getattr(result, "bytes_onchip", 0.0) or 0.0,
                    comm_bytes_scale_up=getattr(result, "comm_bytes_scale_up", 0.0) or 0.0,
                    comm_bytes_scale_out=getattr(result, "comm_bytes_scale_out", 0.0) or 0.0, chips=chips)
    br = step_energy(params, flops_by_precision=dict(result.flops_by_precision), time_s=result.step_time_s,
                     **counters)
    charged = getattr(result, "energy_flops_by_precision", None)
    if charged and charged != result.flops_by_precision:
        br = _with_busy_kernels(params, br, step_energy(params, flops_by_precision=dict(charged),
                                                          time_s=br.time_s_capped, **counters))
    busy_s = (float(getattr(result, "busy_exchange_time_s", 0.0) or 0.0)
              + float(getattr(result, "busy_sequence_time_s", 0.0) or 0.0))
    if busy_s > 0.0 and result.step_time_s > 0.0:
        br = _with_busy_exchange(params, br, busy_s / result.step_time_s)
    tokens = getattr(result, "tokens_per_step", None)
    per_token = bool(tokens) and tokens > 0
    return {
        "energy_j": br.accelerator_total_j,
        "energy_j_per_token": br.accelerator_total_j / tokens if per_token else None,
        "system_energy_j_per_token": br.system_total_j / tokens if per_token else None,
        "facility_energy_j_per_token": br.facility_total_j / tokens if per_token else None,
        "avg_power_w": br.avg_power_w,
        "step_time_s_capped": br.time_s_capped,
        "tdp_derate": br.derate,
    }


def _system_j(params: EnergyParams, accelerator_j: float, time_s: float) -> float:
    """System-boundary joules of one chip's accelerator joules over `time_s`: host power per chip, else the
    host overhead fraction (the scalar form of `step_energy_arrays`' rule)."""
    host = params.host_w_per_chip
    if host is None:
        return accelerator_j * (1.0 + params.host_overhead_fraction)
    return accelerator_j + host * time_s


def _with_busy_kernels(params: EnergyParams, flop_based: EnergyBreakdown, busy: EnergyBreakdown) -> EnergyBreakdown:
    """The step's energy with its compute-bound matrix ops charged at a GEMM's power (`busy`, over the time the
    FLOP-and-byte energy set, TDP derate included), up to the TDP for that time: the extra power fills the
    headroom but does not throttle the clocks further. The throughput fits were made with the FLOP-based
    derate, and ML.ENERGY's attention-heavy runs sit just under the TDP (661-689 W on an H100), not above it."""
    if busy.derate <= 1.0:
        return replace(busy, time_s=flop_based.time_s, derate=flop_based.derate)
    t = flop_based.time_s_capped
    acc = params.tdp_w * t
    system = _system_j(params, acc, t)
    static = params.static_power_w * t
    scale = (acc - static) / busy.dynamic_j if busy.dynamic_j > 0 else 1.0  # the dynamic parts shrink alike
    return EnergyBreakdown(
        compute_j=busy.compute_j * scale, memory_j=busy.memory_j * scale, onchip_j=busy.onchip_j * scale,
        comm_j=busy.comm_j * scale, dynamic_j=acc - static, static_j=static,
        accelerator_j=acc, system_j=system, facility_j=system * params.pue, time_s=flop_based.time_s,
        time_s_capped=t, derate=flop_based.derate, avg_power_w=params.tdp_w, tdp_w=params.tdp_w,
        static_power_w=params.static_power_w, chips=busy.chips)


def _with_busy_exchange(params: EnergyParams, br: EnergyBreakdown, share: float) -> EnergyBreakdown:
    """The step's energy with the `share` of its time spent in a busy exchange (a video DiT's sequence-parallel
    all-to-all and ring passes, `cosim.engines.estimate.sp_exchange_share`) or in a serving stack's unpriced
    per-sequence GPU work (`busy_sequence_time_s`) drawing the dynamic power of the rest of the step, up to the TDP. The FLOP-and-byte energy prices the work; the exchange's time would
    otherwise be charged at static power only."""
    if not 0.0 < share < 1.0 or br.dynamic_j <= 0.0:
        return br
    t = br.time_s_capped
    acc = min(br.static_j + br.dynamic_j / (1.0 - share), params.tdp_w * t)
    scale = (acc - br.static_j) / br.dynamic_j
    system = _system_j(params, acc, t)
    return replace(br, compute_j=br.compute_j * scale, memory_j=br.memory_j * scale, onchip_j=br.onchip_j * scale,
                   comm_j=br.comm_j * scale, dynamic_j=acc - br.static_j, accelerator_j=acc, system_j=system,
                   facility_j=system * params.pue, avg_power_w=acc / t if t > 0 else br.avg_power_w)


# --- calibrated families -------------------------------------------------------------------------

def family_params(slug: str) -> tuple[str | None, dict | None]:
    """(family name, fitted parameters) for a hardware slug, or (None, None) when uncalibrated."""
    for name, fam in (D.load_calibration().get("families") or {}).items():
        if any(fnmatch.fnmatch(slug, pattern) for pattern in fam.get("match", [])):
            return name, fam
    return None, None


def family_params_by_name(name: str) -> dict:
    return D.load_calibration()["families"][name]


def _uncalibrated() -> dict:
    cal = D.load_calibration()
    if "uncalibrated" in cal:
        return cal["uncalibrated"]
    fams = list((cal.get("families") or {}).values())
    if not fams:
        raise RuntimeError("cosim/data/energy_calibration.yaml is missing; run python -m cosim.energy.calibration")
    keys = ("k_deliver", "mem_path_factor", "static_fraction_of_tdp")
    return {k: math.exp(sum(math.log(f[k]) for f in fams) / len(fams)) for k in keys}

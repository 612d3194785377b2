"""The hardware catalog: every slug loads, every figure is sourced, datasheet spot checks, physics sanity.

Spot-check values are typed in from the cited datasheets, not read back from the YAML files.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from cosim.api import figure_rows
from cosim.cli.main import main
from cosim.specs.loader import catalog_dir, list_slugs, load_hardware

REPO = Path(__file__).resolve().parent.parent
HW_DIR = REPO / "hardware_specs"

REQUIRED_SLUGS = [
    "a100-sxm-80gb", "a100-sxm-40gb", "h100-sxm", "h200-sxm", "gh200-144gb", "h800", "h20", "b200", "b300", "gb200-nvl72", "gb300-nvl72",
    "rtx-4090", "l40s", "rtx-pro-6000-blackwell", "mi300x", "mi325x", "mi350x", "mi355x", "tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e", "tpu-v7",
    "gaudi2", "gaudi3", "groq-lpu", "cerebras-wse3", "jetson-agx-orin", "generic-systolic-asic",
]
SRAM_ONLY = {"groq-lpu", "cerebras-wse3"}
T, G = 1e12, 1e9


@pytest.mark.parametrize("slug", REQUIRED_SLUGS)
def test_slug_exists_loads_and_names_itself(slug):
    path = HW_DIR / f"{slug}.yaml"
    assert path.is_file(), f"missing catalog file {path}"
    hw = load_hardware(slug)
    assert hw.name == slug
    assert path.read_text().startswith("# yaml-language-server: $schema=../schemas/hardware.schema.json")


def test_catalog_has_exactly_the_required_slugs():
    assert sorted(list_slugs("hardware_specs")) == sorted(REQUIRED_SLUGS)
    assert catalog_dir("hardware_specs").resolve() == HW_DIR.resolve()


def test_specs_check_whole_catalog_exits_zero(capsys):
    files = sorted(str(p) for p in HW_DIR.glob("*.yaml"))
    assert main(["specs", "check", *files, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and len(report["files"]) == len(REQUIRED_SLUGS)


@pytest.mark.parametrize("slug", REQUIRED_SLUGS)
def test_every_figure_has_a_resolvable_citation(slug):
    hw = load_hardware(slug)
    rows = figure_rows(hw)
    assert len(rows) >= 5
    for row in rows:
        assert row["citation"].strip(), f"{slug}: {row['field']} cites unknown source {row['source']!r}"
        if row["estimate"]:
            assert row["derivation"].strip(), f"{slug}: estimate {row['field']} lacks a derivation"
    tile = hw.compute.gemm_tile
    if tile is not None:
        assert hw.sources.get(tile.source, "").strip()


def test_generic_template_is_all_estimates_with_systolic_and_sweep_fields():
    hw = load_hardware("generic-systolic-asic")
    rows = figure_rows(hw)
    assert rows and all(r["estimate"] for r in rows)
    s = hw.compute.systolic
    assert s is not None and hw.memory_level("sram") and hw.memory_level("hbm")
    assert hw.interconnect.scale_up is not None and hw.cost.purchase_price_usd is not None
    # the bf16 peak is the systolic arithmetic: 2 x rows x cols x arrays x cores x clock
    peak = 2 * s.rows.value * s.cols.value * s.arrays_per_core.value * s.cores.value * hw.compute.clock_hz.value
    assert hw.peak_flops("bf16") == pytest.approx(peak, rel=1e-9)


# (slug, accessor, expected SI value, citation) -- values typed from the datasheets.
SPOT_CHECKS = [
    # NVIDIA H100 datasheet, SXM column: 1,979 TFLOPS BF16 with sparsity -> 989.4 dense; 3.35 TB/s; 700 W.
    ("h100-sxm", "bf16", 989.4 * T), ("h100-sxm", "hbm_bw", 3.35e12), ("h100-sxm", "tdp", 700.0),
    # NVIDIA A100 datasheet, 80GB SXM: 2,039 GB/s; BF16 312 TFLOPS dense; 400 W; nvidia-smi memory.total of an
    # A100-SXM4-80GB: 81920 MiB (the datasheet's "80GB" is 80 GiB).
    ("a100-sxm-80gb", "hbm_bw", 2.039e12), ("a100-sxm-80gb", "bf16", 312 * T),
    ("a100-sxm-80gb", "mem", 81920 * 2**20),
    # A100 40GB SXM: 1.555 TB/s HBM2, 400 W; deviceQuery: 42405855232 bytes; the 80 GB part's compute.
    ("a100-sxm-40gb", "hbm_bw", 1.555e12), ("a100-sxm-40gb", "mem", 42_405_855_232), ("a100-sxm-40gb", "bf16", 312 * T),
    # NVIDIA L40S datasheet: BF16 362.05 TFLOPS dense (733 with sparsity), FP8 733; 864 GB/s; 350 W; nvidia-smi:
    # 46068 MiB (the datasheet's "48 GB GDDR6 with ECC").
    ("l40s", "bf16", 362.05 * T), ("l40s", "fp8", 733 * T), ("l40s", "hbm_bw", 864 * G), ("l40s", "tdp", 350.0),
    ("l40s", "mem", 46068 * 2**20),
    # NVIDIA H200 datasheet: 4.8 TB/s; nvidia-smi memory.total 143771 MiB (the datasheet's "141 GB").
    ("h200-sxm", "mem", 143771 * 2**20), ("h200-sxm", "hbm_bw", 4.8e12),
    # nvidia-smi memory.total of H100 80GB HBM3: 81559 MiB (80 GiB less the driver's reserve).
    ("h100-sxm", "mem", 81559 * 2**20),
    # NVIDIA HGX B200 table: FP4 18 PF with sparsity -> 9 PF dense; nvidia-smi: 183359 MiB (the table's "180 GB").
    ("b200", "fp4", 9e15), ("b200", "mem", 183359 * 2**20),
    # HGX B300: FP8 72 PF with sparsity per 8 GPUs -> 4.5 PF dense per GPU; 8 TB/s; MLPerf v6.1's "B300-SXM-270GB".
    ("b300", "fp8", 4.5e15), ("b300", "hbm_bw", 8e12), ("b300", "mem", 270 * G),
    # NVIDIA GB200 NVL72 table: 72-GPU NVLink domain, 1.8 TB/s bidirectional per GPU.
    ("gb200-nvl72", "domain", 72), ("gb200-nvl72", "link_bw", 900 * G),
    # AMD MI300X: 192 GB HBM3 (rocm-smi: 205822885888 B) at 5.3 TB/s, 1307.4 TFLOPS BF16 dense (ROCm MI300 peak table).
    ("mi300x", "mem", 205_822_885_888), ("mi300x", "hbm_bw", 5.3e12), ("mi300x", "bf16", 1307.4 * T),
    # AMD MI355X: 288 GB HBM3E, 8 TB/s, 1400 W.
    ("mi355x", "mem", 288 * 2**30), ("mi355x", "tdp", 1400.0),
    # AMD MI350X: the same 288 GB at 8 TB/s, 1000 W air-cooled; FP8 = 256 CUs x 8192 FLOP/clk x 2.2 GHz (4.61 PF;
    # AMD quotes 37 PF per 8-GPU platform).
    ("mi350x", "mem", 288 * 2**30), ("mi350x", "hbm_bw", 8e12), ("mi350x", "tdp", 1000.0), ("mi350x", "fp8", 4613.7 * T),
    # Google Cloud TPU v5e docs: 197 TFLOPS bf16, 16 GB HBM2, 819 GBps, 400 GBps bidirectional ICI.
    ("tpu-v5e", "bf16", 197 * T), ("tpu-v5e", "mem", 16 * G), ("tpu-v5e", "hbm_bw", 819 * G),
    ("tpu-v5e", "link_bw", 200 * G),
    # Google Cloud TPU v4 docs: 275 TFLOPS, 32 GiB HBM2 at 1200 GBps, 4096-chip pod.
    ("tpu-v4", "mem", 32 * 2**30), ("tpu-v4", "hbm_bw", 1200 * G), ("tpu-v4", "domain", 4096),
    # Google Cloud TPU7x docs: 2307 TFLOPS bf16, 4614 fp8, 192 GiB.
    ("tpu-v7", "fp8", 4614 * T), ("tpu-v7", "mem", 192 * 2**30),
    # Intel Hot Chips 2024 (Gaudi 3): 1835 TFLOPS BF16, 128 GB at 3.67 TB/s, 96 MB SRAM; Gaudi 2 432 TFLOPS.
    ("gaudi3", "bf16", 1835 * T), ("gaudi3", "hbm_bw", 3.67e12), ("gaudi2", "bf16", 432 * T),
    # ...their HBM2E in DRAM's binary units: six (Gaudi 2) and eight (Gaudi 3) stacks of 16 GiB
    ("gaudi2", "mem", 6 * 16 * 2**30), ("gaudi3", "mem", 8 * 16 * 2**30),
    # TechPowerUp (Groq): 230 MB SRAM at 80 TB/s, 188 TFLOPS FP16.
    ("groq-lpu", "mem", 230e6), ("groq-lpu", "hbm_bw", 80e12),
    # Cerebras WSE-3: 44 GB on-chip SRAM at 21 PB/s.
    ("cerebras-wse3", "mem", 44 * G), ("cerebras-wse3", "hbm_bw", 21e15),
    # Ada whitepaper Appendix A: RTX 4090 24 GB GDDR6X (nvidia-smi: 24564 MiB) at 1008 GB/s, 82.6 TFLOPS FP32.
    ("rtx-4090", "mem", 24564 * 2**20), ("rtx-4090", "hbm_bw", 1008 * G),
    # NVIDIA RTX PRO 6000 Blackwell Server Edition page: 96 GB GDDR7 (the driver: 97,887 MiB) at 1,597 GB/s,
    # up to 600 W, FP4 4 PFLOPS and FP8 2 PFLOPS with sparsity (dense: half); PCIe 5.0 x16 64 GB/s per direction.
    ("rtx-pro-6000-blackwell", "mem", 97887 * 2**20), ("rtx-pro-6000-blackwell", "hbm_bw", 1597 * G),
    ("rtx-pro-6000-blackwell", "tdp", 600.0), ("rtx-pro-6000-blackwell", "fp4", 4000 * T / 2),
    ("rtx-pro-6000-blackwell", "fp8", 2000 * T / 2), ("rtx-pro-6000-blackwell", "link_bw", 128 * G / 2),
    # NVIDIA GH200 144GB: the H100 SXM's GH100 compute (FP8 1,978.9 TFLOPS dense) beside six fully enabled
    # 24 GB HBM3e stacks at 4.9 TB/s; the driver total is the H200's 143,771 MiB scaled by 144 / 141.
    ("gh200-144gb", "mem", 143771 * 144 / 141 * 2**20), ("gh200-144gb", "hbm_bw", 4900 * G),
    ("gh200-144gb", "fp8", 1978.9 * T), ("gh200-144gb", "tdp", 1000.0),
    # Jetson AGX Orin 64GB: 204.8 GB/s LPDDR5.
    ("jetson-agx-orin", "hbm_bw", 204.8 * G),
]


def _get(hw, what):
    if what in ("bf16", "fp8", "fp4"):
        return hw.peak_flops(what)
    if what == "mem":
        return hw.main_memory.capacity_bytes.value
    if what == "hbm_bw":
        return hw.main_memory.bandwidth_bytes_per_s.value
    if what == "tdp":
        return hw.power.tdp_w.value
    if what == "domain":
        return hw.interconnect.scale_up.domain_size.value
    if what == "link_bw":
        return hw.interconnect.scale_up.bandwidth_bytes_per_s.value
    raise KeyError(what)


@pytest.mark.parametrize(("slug", "what", "expected"), SPOT_CHECKS)
def test_datasheet_spot_checks(slug, what, expected):
    assert _get(load_hardware(slug), what) == pytest.approx(expected, rel=1e-6)


def test_tpu_systolic_peaks_match_published_figures():
    # GCP docs: v4 and v5p have 2 TensorCores x 4 MXUs of 128x128; v5e 1 x 4; bf16 peaks 275 / 459 / 197.
    for slug, arrays in (("tpu-v4", 8), ("tpu-v5p", 8), ("tpu-v5e", 4)):
        hw = load_hardware(slug)
        s = hw.compute.systolic
        assert (s.rows.value, s.cols.value) == (128, 128)
        assert s.arrays_per_core.value * s.cores.value == arrays
        derived = 2 * 128 * 128 * arrays * hw.compute.clock_hz.value
        assert derived == pytest.approx(hw.peak_flops("bf16"), rel=2e-3)
    v6e = load_hardware("tpu-v6e").compute.systolic
    assert (v6e.rows.value, v6e.cols.value) == (256, 256)


@pytest.mark.parametrize("slug", REQUIRED_SLUGS)
def test_physical_sanity(slug):
    hw = load_hardware(slug)
    main_mem = hw.main_memory
    onchip = [m for m in hw.memory[:-1]]
    if slug in SRAM_ONLY:
        assert main_mem.kind == "sram" and len(hw.memory) == 1
    else:
        assert main_mem.kind in ("hbm", "gddr", "lpddr", "ddr")
        for level in onchip:
            assert level.capacity_bytes.value < main_mem.capacity_bytes.value, level.name
    # capacities grow outwards
    caps = [m.capacity_bytes.value for m in hw.memory]
    assert caps == sorted(caps)
    up = hw.interconnect.scale_up
    if hw.kind == "gpu" and up is not None and main_mem.bandwidth_bytes_per_s is not None:
        assert up.bandwidth_bytes_per_s.value < main_mem.bandwidth_bytes_per_s.value
    out = hw.interconnect.scale_out
    if up is not None and out is not None:
        assert out.bandwidth_bytes_per_s.value <= up.bandwidth_bytes_per_s.value
    if up is not None and up.topology == "torus":
        dims = up.torus_dims
        assert len(dims) in (2, 3)
        assert up.domain_size is not None
        product = 1
        for d in dims:
            product *= d
        assert product <= up.domain_size.value
    if hw.power.idle_w is not None:
        assert hw.power.tdp_w.value > hw.power.idle_w.value
    # peak ordering where both are given: lower precision is never slower
    for hi, lo in (("bf16", "fp8"), ("fp8", "fp4"), ("tf32", "bf16")):
        a, b = hw.peak_flops(hi), hw.peak_flops(lo)
        if a and b:
            assert b >= a, f"{lo} slower than {hi}"
    # energy per FLOP at TDP and peak is physically plausible (0.05 .. 50 pJ/FLOP)
    best = max(v for v in (hw.peak_flops(p) for p in ("bf16", "fp16", "int8", "fp8")) if v)
    assert 0.05e-12 < hw.power.tdp_w.value / best < 50e-12


def _export_module():
    spec = importlib.util.spec_from_file_location("export_schemas", REPO / "scripts" / "export_schemas.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_schemas_equal_a_fresh_export():
    fresh = _export_module().build_schemas()
    for name, text in fresh.items():
        committed = REPO / "schemas" / name
        assert committed.is_file(), f"run scripts/export_schemas.py: {name} missing"
        assert committed.read_text(encoding="utf-8") == text, f"{name} is stale: run scripts/export_schemas.py"


def test_catalog_yaml_validates_against_exported_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "schemas" / "hardware.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for slug in REQUIRED_SLUGS:
        document = yaml.safe_load((HW_DIR / f"{slug}.yaml").read_text())
        errors = [e.message for e in validator.iter_errors(document)]
        assert not errors, f"{slug}: {errors[:3]}"
    # and the schema rejects what the loader rejects: an unknown key
    bad = yaml.safe_load((HW_DIR / "h100-sxm.yaml").read_text()) | {"tdp": 700}
    assert not validator.is_valid(bad)


def test_export_script_writes_files(tmp_path):
    module = _export_module()
    assert module.main(tmp_path) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"hardware.schema.json", "workload.schema.json"}
    schema = json.loads((tmp_path / "hardware.schema.json").read_text())
    assert schema["additionalProperties"] is False and "name" in schema["required"]

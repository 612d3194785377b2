"""Serving accuracy: simulated offline throughput and decode latency against published measurements.

Rows come from the shared reference data (read-only):
* /work/shared/data/measurements_calibration.yaml -- TensorRT-LLM performance-overview rows
  (`trtllm-perf-*`, offline max-throughput, fixed input/output lengths, one TP group) and MLPerf
  Inference Llama-2-70B Offline rows (OpenOrca, `profile:openorca`);
* /work/shared/data/energy_cost_facts.yaml -- ML.ENERGY v3 rows (vLLM, lm-arena-chat, a given
  max_num_seqs): median ITL compared with simulated median TPOT, output tokens/s with throughput.
Each row is simulated offline (all requests queued at t = 0) with the analytical engine's step table.
Scheduler limits the rows do not state are assumptions, printed with the results.

Run: .venv/bin/python benchmarks/serving_accuracy.py [--quick] [--stacks tuned|fitted]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml

from cosim.cli.common import build_scenario
from cosim.serving.service import make_requests, serve

SHARED = Path("/work/shared/data")
HW = {"GB200": "gb200-nvl72", "H100": "h100-sxm", "H200": "h200-sxm", "B200": "b200"}
WL = {"Llama-3.3-70B-Instruct": "llama-3.3-70b", "Llama-3.1-8B-Instruct": "llama-3.1-8b",
      "Llama-3.1-405B-Instruct": "llama-3.1-405b", "Llama-2-70B-chat-hf": "llama-2-70b",
      "meta-llama/Llama-3.1-70B-Instruct": "llama-3.1-70b", "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b",
      "meta-llama/Llama-3.3-70B-Instruct": "llama-3.3-70b"}
TRT_LIMITS = {"max_seqs": 2048, "max_batched_tokens": 8192}  # assumption: trtllm-bench tunes these per row
#: serving-stack factors used in the simulator (`--stacks fitted` applies the calibrated trtllm-bench and vllm
#: factors; the default, tuned, keeps the simulator independent of factors fitted on the closed-form rows)
STACKS = {"trtllm": "tuned", "mlenergy": "tuned"}


def _hw(text: str) -> str | None:
    return next((v for k, v in HW.items() if k in text), None)


def _precision(text: str | None) -> str:
    text = (text or "").lower()
    return "fp4" if "fp4" in text else "fp8" if "fp8" in text else "bf16"


def _sim(hw, wl, precision, tp, chips, requests, max_seqs, max_tokens, stack="tuned"):
    """One simulation with the calibrated kernel efficiency of the row's serving stack."""
    sc = build_scenario(phase="generate", precision=precision, tp=tp)
    return serve(hw, wl, sc, chips=chips, requests=requests, max_seqs=max_seqs, max_batched_tokens=max_tokens,
                 timeline=False, stack=stack)


def trtllm_rows(quick: bool):
    data = yaml.safe_load((SHARED / "measurements_calibration.yaml").read_text())["records"]
    for r in data:
        if not r["id"].startswith("trtllm-perf-") or r["model"] not in WL:
            continue
        hw = _hw(r["hardware"]["accelerator"])
        if hw is None:
            continue
        w = r["workload"]
        tp = int(str(w["parallelism"]).replace("TP", ""))
        n = int(str(w["batch_size_or_concurrency"]).split()[0])
        if quick:
            n = min(n, 1000)
        req = make_requests(offline=True, num_requests=n, qps=None, duration_s=None, input_len=str(w["input_len"]),
                            output_len=str(w["output_len"]))
        res = _sim(hw, WL[r["model"]], _precision(r["precision"]), tp, tp, req, **{
            "max_seqs": TRT_LIMITS["max_seqs"], "max_tokens": TRT_LIMITS["max_batched_tokens"],
            "stack": STACKS["trtllm"]})
        yield r["id"], "output tok/s", float(r["value"]), res.get("output_tokens_per_s"), res


def mlperf_rows(quick: bool):
    data = yaml.safe_load((SHARED / "measurements_calibration.yaml").read_text())["records"]
    for r in data:
        if r["source_class"] != "mlperf_inference" or r["model"] != "Llama-2-70B-chat-hf":
            continue
        if r["workload"]["scenario"] != "Offline":
            continue
        hw = _hw(r["hardware"]["accelerator"])
        par = str(r["workload"].get("parallelism") or "")
        if hw is None or not par.startswith("TP"):
            continue
        tp = int(par[2])
        batch = 896 if "896" in par else 784 if "784" in r["workload"]["parallelism"] else 256
        chips = int(r["hardware"]["num_accelerators"])
        n = 4096 if quick else 24576
        req = make_requests(offline=True, num_requests=n, qps=None, duration_s=None, input_len="profile:openorca",
                            output_len="profile:openorca", seed=0)
        res = _sim(hw, "llama-2-70b", _precision(r["precision"]), tp, chips, req, batch, 8192)
        yield r["id"], "output tok/s", float(r["value"]), res.get("output_tokens_per_s"), res


def mlenergy_rows(quick: bool):
    rows = yaml.safe_load((SHARED / "energy_cost_facts.yaml").read_text())["ml_energy_leaderboard_v3"]["rows"]
    for r in rows:
        if r["model"] not in WL or r["task"] != "lm-arena-chat" or r["gpu"] not in ("H100", "B200"):
            continue
        hw = HW[r["gpu"]]
        gpus = int(r["num_gpus"])
        for key in ("smallest_batch", "min_energy_config"):
            c = r[key]
            b = int(c["max_num_seqs"])
            n = max(4 * b, 64) if not quick else max(2 * b, 32)
            out = f"lognormal:{c['avg_output_len']}:0.8"
            req = make_requests(offline=True, num_requests=n, qps=None, duration_s=None,
                                input_len="profile:lmarena-chat-70b", output_len=out, seed=0)
            res = _sim(hw, WL[r["model"]], "bf16", gpus, gpus, req, b, 8192, stack=STACKS["mlenergy"])
            name = f"mlenergy {r['model'].split('/')[-1]} {gpus}x{r['gpu']} seqs={b}"
            yield name, "median ITL s", c["median_itl_ms"] / 1000.0, res.get("tpot_p50_s"), res
            yield name, "output tok/s", float(c["output_tokens_per_s"]), res.get("output_tokens_per_s"), res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer requests per row")
    ap.add_argument("--stacks", choices=("tuned", "fitted"), default="tuned",
                    help="tuned: every row with the tuned-engine calibration; fitted: TensorRT-LLM rows with the "
                         "trtllm-bench factor and ML.ENERGY rows with the vllm factor")
    args = ap.parse_args()
    if args.stacks == "fitted":
        STACKS.update(trtllm="trtllm-bench", mlenergy="vllm")
    print("| row | metric | measured | simulated | error |")
    print("| --- | --- | ---: | ---: | ---: |")
    errs: dict[str, list[float]] = {"trtllm": [], "mlperf": [], "mlenergy": []}
    for group, gen in (("trtllm", trtllm_rows), ("mlperf", mlperf_rows), ("mlenergy", mlenergy_rows)):
        for name, metric, meas, sim, res in gen(args.quick):
            if sim is None:
                print(f"| {name} | {metric} | {meas:.4g} | infeasible: {res.get('reason')} | - |")
                continue
            e = (sim - meas) / meas
            errs[group].append(abs(e))
            print(f"| {name} | {metric} | {meas:.4g} | {sim:.4g} | {e:+.1%} |")
            sys.stdout.flush()
    print()
    for g, v in errs.items():
        if v:
            print(f"- {g}: {len(v)} comparisons, mean |error| {np.mean(v):.1%}, median {np.median(v):.1%}, "
                  f"max {np.max(v):.1%}")
    print(f"- assumptions: TensorRT-LLM rows run with max_seqs {TRT_LIMITS['max_seqs']} and max_batched_tokens "
          f"{TRT_LIMITS['max_batched_tokens']}; MLPerf rows with the per-engine batch stated in the row; "
          "ML.ENERGY rows with max_num_seqs as max_seqs, bf16, lengths from profile lmarena-chat-70b "
          "(input placeholder, see cosim/data/dataset_profiles.yaml) and the row's mean output length")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

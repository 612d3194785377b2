"""Run SCALE-Sim v3 (pip scalesim) on GEMM shapes; print one CSV row per case."""
import contextlib
import io
import json
import os
import sys
import tempfile
import time

from scalesim.scale_sim import scalesim

CFG = """[general]
run_name = run

[architecture_presets]
ArrayHeight:    {R}
ArrayWidth:     {C}
IfmapSramSzkB:    {ik}
FilterSramSzkB:   {fk}
OfmapSramSzkB:    {ok}
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : {bw}
Dataflow : {df}
MemoryBanks:   1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: {bw}
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: {bw}
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: {mode}
UseRamulatorTrace: False
"""

def run(R, C, df, M, K, N, ik, fk, ok, bw):
    d = tempfile.mkdtemp(dir="/tmp/ssbench/runs")
    mode = "CALC" if bw <= 0 else "USER"
    with open(f"{d}/c.cfg", "w") as f:
        f.write(CFG.format(R=R, C=C, ik=ik, fk=fk, ok=ok, bw=max(bw, 1), df=df, mode=mode))
    with open(f"{d}/t.csv", "w") as f:
        f.write(f"Layer, M, N, K,\nL0, {M}, {N}, {K},\n")
    with open(f"{d}/l.csv", "w") as f:
        f.write("Layer name, IFMAP Height Intraline Factor, IFMAP Width Intraline Factor, Filter Height Intraline Factor, Filter Width Intraline Factor, Channel Intraline Factor, Num Filter Intraline Factor, IFMAP Height Intraline Order, IFMAP Width Intraline Order, Channel Intraline Order, IFMAP Height Interline Order, IFMAP Width Interline Order, Channel Interline Order, Num Filter Intraline Order, Channel Intraline Order, Filter Height Intraline Order, Filter Width Intraline Order, Num Filter Interline Order, Channel Interline Order, Filter Height Interline Order, Filter Width Interline Order,\n")
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        s = scalesim(save_disk_space=True, verbose=False, config=f"{d}/c.cfg", topology=f"{d}/t.csv",
                     layout=f"{d}/l.csv", input_type_gemm=True)
        s.run_scale(top_path=d)
    wall = time.perf_counter() - t0
    lay = s.runner.single_layer_sim_object_list[0]
    comp = lay.get_compute_report_items()
    det = lay.get_detail_report_items()
    return dict(R=R, C=C, df=df, M=M, K=K, N=N, ifmap_kb=ik, filter_kb=fk, ofmap_kb=ok, bw=bw,
                total_incl_prefetch=int(comp[0]), total=int(comp[1]), stall=int(comp[2]),
                util_pct=float(comp[3]), mapping_eff_pct=float(comp[4]), compute_util_pct=float(comp[5]),
                ifmap_sram_reads=int(det[2]), filter_sram_reads=int(det[5]), ofmap_sram_writes=int(det[8]),
                ifmap_dram_reads=int(det[11]), filter_dram_reads=int(det[14]), ofmap_dram_writes=int(det[17]),
                wall_s=wall)

if __name__ == "__main__":
    os.makedirs("/tmp/ssbench/runs", exist_ok=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        a = line.split()
        args = [int(a[0]), int(a[1]), a[2]] + [int(x) for x in a[3:10]]
        print(json.dumps(run(*args)), flush=True)

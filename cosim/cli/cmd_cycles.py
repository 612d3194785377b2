"""`cosim cycles`: one GEMM on a systolic array, fold by fold, with SCALE-Sim's semantics."""

from __future__ import annotations

import typer

from cosim.errors import CosimInputError

HELP = (
    "Cycles, stalls, utilisation and SRAM/DRAM traffic of one GEMM (M x K) @ (K x N) on an R x C systolic "
    "array. SCALE-Sim mapping: ifmap = M x K (M = ifmap rows / output pixels, K = window), filter = K x N "
    "(N = number of filters); os maps M,N on the array and streams K; ws maps K,N and streams M; is maps "
    "K,M and streams N."
)


def register(app: typer.Typer) -> None:
    @app.command("cycles", help=HELP)
    def cycles_cmd(
        rows: int = typer.Option(None, "--rows", help="array rows R"),
        cols: int = typer.Option(None, "--cols", help="array columns C"),
        dataflow: str = typer.Option(None, "--dataflow", help="os | ws | is"),
        m: int = typer.Option(..., "--m", help="M: ifmap rows (SCALE-Sim ifmap height / output pixels)"),
        k: int = typer.Option(..., "--k", help="K: reduction dim (SCALE-Sim ifmap width = filter height)"),
        n: int = typer.Option(..., "--n", help="N: output columns (SCALE-Sim number of filters)"),
        ifmap_kb: float = typer.Option(None, "--ifmap-sram-kb", help="ifmap SRAM KiB (default 64)"),
        filter_kb: float = typer.Option(None, "--filter-sram-kb", help="filter SRAM KiB (default 64)"),
        ofmap_kb: float = typer.Option(None, "--ofmap-sram-kb", help="ofmap SRAM KiB (default 64)"),
        dram_bw: float = typer.Option(None, "--dram-bw", help="DRAM words per cycle per operand"),
        ideal_bw: bool = typer.Option(False, "--ideal-bw", help="unlimited DRAM bandwidth: no stalls"),
        word_bytes: int = typer.Option(None, "--word-bytes", help="bytes per word (default 1, as SCALE-Sim)"),
        hardware: str = typer.Option(None, "--hardware", help="catalog slug or YAML path with compute.systolic"),
        fmt: str = typer.Option("table", "--format", help="table | json"),
    ) -> None:
        from cosim.cli.output import check_format, print_json, print_key_values
        from cosim.engines.cycle.systolic import SystolicConfig, simulate_gemm

        check_format(fmt, ("table", "json"))
        if dram_bw is not None and ideal_bw:
            raise CosimInputError("give either --dram-bw or --ideal-bw, not both")
        base: dict = {"rows": rows, "cols": cols, "dataflow": dataflow, "arrays": 1}
        kb = {"ifmap": 64.0, "filter": 64.0, "ofmap": 64.0}
        bw = 0.0
        wb = word_bytes or 1
        if hardware:
            from cosim.engines.cycle.model import _systolic_config
            from cosim.specs.loader import load_hardware

            hw = load_hardware(hardware)
            if hw.compute.systolic is None:
                raise CosimInputError("has no compute.systolic section", file=hardware, field="compute.systolic")
            cfg, _ = _systolic_config(hw, wb)
            base.update(rows=rows or cfg.rows, cols=cols or cfg.cols, dataflow=dataflow or cfg.dataflow,
                        arrays=cfg.arrays)
            kb = {op: cfg.ifmap_sram_bytes / 1024 for op in kb}
            bw = cfg.dram_bw_words_per_cycle
        for flag, key in (("--rows", "rows"), ("--cols", "cols")):
            if base[key] is None:
                raise CosimInputError(f"{flag} is required (or --hardware)")
        if base["dataflow"] is None:
            base["dataflow"] = "ws"
        for op, value in (("ifmap", ifmap_kb), ("filter", filter_kb), ("ofmap", ofmap_kb)):
            if value is not None:
                if value <= 0:
                    raise CosimInputError(f"--{op}-sram-kb must be positive, got {value}")
                kb[op] = value
        if dram_bw is not None:
            if dram_bw <= 0:
                raise CosimInputError(f"--dram-bw must be positive, got {dram_bw}")
            bw = dram_bw
        if ideal_bw:
            bw = 0.0
        cfg = SystolicConfig(
            rows=base["rows"], cols=base["cols"], dataflow=base["dataflow"],
            ifmap_sram_bytes=int(kb["ifmap"] * 1024), filter_sram_bytes=int(kb["filter"] * 1024),
            ofmap_sram_bytes=int(kb["ofmap"] * 1024), dram_bw_words_per_cycle=bw, word_bytes=wb,
            arrays=base["arrays"])
        result = simulate_gemm(cfg, m, k, n).to_dict()
        if fmt == "json":
            print_json(result)
            return
        flat = {key: v for key, v in result.items() if not isinstance(v, dict)}
        for key in ("sram_reads", "sram_writes", "dram_reads", "dram_writes"):
            for op, v in result[key].items():
                flat[f"{key}.{op}"] = v
        print_key_values(flat, title=f"{cfg.rows}x{cfg.cols} {cfg.dataflow} x{cfg.arrays} GEMM {m}x{k}x{n}")

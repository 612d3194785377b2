"""Run a sweep: chunks evaluated here or on a Dask cluster, streamed to Parquet, resumable.

Layout while running: `OUT.parquet.parts/part-000012.parquet` (one file per finished chunk, written to a
temporary name and renamed) and `OUT.parquet.parts/manifest.json` (spec hash, chunk size, finished
chunks with their statistics; rewritten atomically after each chunk). A killed sweep run again with
the same spec resumes: finished chunks are kept (their Parquet footers are checked), the rest are
evaluated. At the end the parts are streamed, in chunk order, into the single file OUT.parquet
(units in the schema metadata under `cosim.units`) and the parts folder is removed. Memory holds a
few chunks at a time whatever the number of points.

Dask: pass `scheduler="tcp://HOST:PORT"` to use an existing cluster (start one with
`dask scheduler` and `dask worker tcp://HOST:8786 --nthreads 1` on each machine, with cosim installed
in the same environment everywhere), or `local_cluster=N` for N local worker processes. Workers get
plain-dict payloads, so they need no access to the spec files; results come back to this process,
which alone writes the output, and are identical to a local run.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosim.errors import CosimInputError
from cosim.explore.engine import SweepContext, evaluate_chunk, evaluate_chunk_remote
from cosim.explore.results import merge_stats, tightest_constraint, unit_of
from cosim.explore.sampling import n_chunks
from cosim.explore.spec import SweepSpec

MANIFEST_FORMAT = "cosim-sweep-parts/1"


@dataclass
class SweepSummary:
    """What a finished sweep reports (JSON-ready via `as_dict`)."""

    output: str
    spec_hash: str
    points: int
    rows: int
    chunks: int
    resumed_chunks: int
    engine_feasible: int
    feasible_points: int
    best: dict[str, float | None]
    tightest_constraint: str | None
    message: str
    seconds: float
    stats: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.pop("stats")
        return d


def parts_dir(output: Path) -> Path:
    return output.with_name(output.name + ".parts")


def _atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_manifest(path: Path, spec_hash: str, chunk_size: int) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("done"), dict):
            raise ValueError("not a cosim sweep manifest")
        done = {int(k): v for k, v in data["done"].items()}
        for v in done.values():
            int(v["rows"])
            v["stats"]["rows"]  # noqa: B018 - shape check
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CosimInputError(f"corrupt resume file ({err}); delete {path.parent} or run with --fresh",
                              file=str(path)) from None
    if data.get("spec_hash") != spec_hash or data.get("chunk_size") != chunk_size:
        raise CosimInputError(f"resume file belongs to a different sweep spec; delete {path.parent} "
                              "or run with --fresh", file=str(path))
    data["done"] = done
    return data


def _part_ok(path: Path, rows: int) -> bool:
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path).num_rows == rows
    except Exception:  # unreadable or truncated part: evaluate the chunk again
        return False


def _schema_metadata(spec: SweepSpec, names: list[str]) -> dict[bytes, bytes]:
    units = {n: unit_of(n) for n in names}
    return {
        b"cosim.units": json.dumps(units).encode(),
        b"cosim.spec_hash": spec.hash().encode(),
        b"cosim.spec": json.dumps(spec.model_dump(mode="json")).encode(),
    }


class _Progress:
    """A rich progress bar on stderr, only when stderr is a terminal and not quiet."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.bar = Progress("sweep", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task("chunks", total=total)
            self.bar.start()

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def run_sweep(spec: SweepSpec, output: str | Path, *, evaluator=None, base_dir: Path | None = None,
              fresh: bool = False, quiet: bool = False, scheduler: str | None = None,
              local_cluster: int | None = None, client=None, max_chunks: int | None = None) -> SweepSummary:
    """Run (or resume) a sweep and write OUT.parquet; `max_chunks` stops early (tests of resume)."""
    t0 = time.perf_counter()
    output = Path(output)
    distributed = bool(scheduler or local_cluster or client)
    ctx = SweepContext.build(spec, evaluator=evaluator, base_dir=base_dir, single_thread=distributed)
    spec_hash = spec.hash()
    total_chunks = max(n_chunks(spec), 1)
    pdir = parts_dir(output)
    manifest_path = pdir / "manifest.json"
    if fresh and pdir.exists():
        shutil.rmtree(pdir)
    if manifest_path.exists():
        manifest = _read_manifest(manifest_path, spec_hash, spec.chunk_size)
    else:
        pdir.mkdir(parents=True, exist_ok=True)
        manifest = {"format": MANIFEST_FORMAT, "spec_hash": spec_hash, "chunk_size": spec.chunk_size,
                    "n_chunks": total_chunks, "done": {}}
    done: dict[int, dict[str, Any]] = {
        k: v for k, v in manifest["done"].items() if _part_ok(pdir / _part_name(k), v["rows"])}
    resumed = len(done)
    todo = [k for k in range(total_chunks) if k not in done]
    if max_chunks is not None:
        todo = todo[:max_chunks]

    def save(k: int, table, stats) -> None:
        import pyarrow.parquet as pq

        rows = 0 if table is None else table.num_rows
        if table is not None:
            tmp = pdir / (_part_name(k) + ".tmp")
            pq.write_table(table, tmp, **_write_options(table.schema))
            os.replace(tmp, pdir / _part_name(k))
        done[k] = {"rows": rows, "stats": stats or _empty_stats()}
        _atomic_write_json(manifest_path, {**manifest, "done": {str(i): v for i, v in sorted(done.items())}})

    progress = _Progress(total_chunks, enabled=not quiet)
    progress.advance(resumed)
    try:
        if distributed:
            _run_dask(ctx, todo, save, progress, scheduler=scheduler, local_cluster=local_cluster, client=client)
        else:
            for k in todo:
                table, stats = evaluate_chunk(ctx, k)
                save(k, table, stats)
                progress.advance()
    finally:
        progress.close()
    if len(done) < total_chunks:  # stopped early on purpose
        return _summary(spec, output, done, resumed, total_chunks, t0, spec_hash, partial=True)
    _merge_parts(spec, output, pdir, total_chunks, done)
    shutil.rmtree(pdir, ignore_errors=True)
    return _summary(spec, output, done, resumed, total_chunks, t0, spec_hash)


def _write_options(schema) -> dict[str, Any]:
    """Dictionary-encode labels, flags and integers only: high-entropy floats gain nothing from it."""
    import pyarrow as pa

    labels = [f.name for f in schema if not pa.types.is_floating(f.type)]
    return {"compression": "snappy", "use_dictionary": labels, "write_statistics": False}


def _part_name(k: int) -> str:
    return f"part-{k:06d}.parquet"


def _empty_stats() -> dict[str, Any]:
    return {"rows": 0, "engine_feasible": 0, "meets": 0, "constraints": {}, "objectives": {}}


def _merge_parts(spec: SweepSpec, output: Path, pdir: Path, total: int, done: dict[int, dict]) -> None:
    """Stream the parts, in chunk order, into one Parquet file (one part in memory at a time)."""
    import pyarrow.parquet as pq

    writer = None
    tmp = output.with_name(output.name + ".tmp")
    try:
        for k in range(total):
            if not done[k]["rows"]:
                continue
            table = pq.read_table(pdir / _part_name(k))
            if writer is None:
                schema = table.schema.with_metadata(_schema_metadata(spec, table.schema.names))
                writer = pq.ParquetWriter(tmp, schema, **_write_options(schema))
            writer.write_table(table.cast(writer.schema))
        if writer is None:
            raise CosimInputError("the sweep produced no rows", field="sampling")
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, output)


def _summary(spec, output, done, resumed, total, t0, spec_hash, partial=False) -> SweepSummary:
    stats = merge_stats([v["stats"] for v in done.values()], spec.constraints, spec.objectives)
    tight = None
    if partial:
        message = f"stopped after {len(done)} of {total} chunks; run again to resume"
    elif stats["meets"] == 0:
        tight = tightest_constraint(stats)
        message = "no feasible point" + (f"; tightest constraint: {tight}" if tight else "")
    else:
        message = f"{stats['meets']} of {stats['rows']} rows meet every constraint"
    return SweepSummary(
        output=str(output), spec_hash=spec_hash, points=spec.n_points(), rows=stats["rows"], chunks=total,
        resumed_chunks=resumed, engine_feasible=stats["engine_feasible"], feasible_points=stats["meets"],
        best=stats["objectives"], tightest_constraint=tight, message=message,
        seconds=round(time.perf_counter() - t0, 3), stats=stats,
    )


def _run_dask(ctx: SweepContext, todo: list[int], save, progress, *, scheduler, local_cluster, client) -> None:
    """Same chunks on dask.distributed, a bounded number in flight; results written here."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - the cluster extra is installed in CI
        raise CosimInputError("Dask is not installed: pip install 'cosim[cluster]'") from None
    own_client = client is None
    cluster = None
    if own_client:
        if scheduler:
            try:
                client = Client(scheduler, timeout="10s")
            except OSError as err:
                raise CosimInputError(f"cannot reach the Dask scheduler at {scheduler} ({err})",
                                      field="--scheduler") from None
        else:
            cluster = LocalCluster(n_workers=int(local_cluster), threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
    try:
        client.run(_worker_setup)
        payload = ctx.payload()
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        window = 2 * workers
        queue = list(todo)
        futures = as_completed()
        for _ in range(min(window, len(queue))):
            k = queue.pop(0)
            futures.add(client.submit(evaluate_chunk_remote, payload, k, key=f"cosim-chunk-{k}-{ctx.spec.hash()[:8]}",
                                      pure=False))
        index = {}
        for fut in futures:
            table, stats = fut.result()
            k = int(fut.key.split("-")[2])
            index[k] = True
            save(k, table, stats)
            progress.advance()
            fut.release()
            if queue:
                k2 = queue.pop(0)
                futures.add(client.submit(evaluate_chunk_remote, payload, k2,
                                          key=f"cosim-chunk-{k2}-{ctx.spec.hash()[:8]}", pure=False))
    finally:
        if own_client:
            client.close()
            if cluster is not None:
                cluster.close()


def _worker_setup() -> None:
    """Run once on every worker: one Numba thread per task (numba.set_num_threads is per thread, so an
    in-process cluster does not change the caller's threads; environment variables are left alone because
    numba refuses a changed NUMBA_NUM_THREADS once its pool is running)."""
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(1)

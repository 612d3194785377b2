"""Generation-only steps replayed as CUDA graphs run the batch padded up to a captured size.

TensorRT-LLM's PyTorch backend captures one CUDA graph per batch size in `cuda_graph_config.batch_sizes`
that is at most the engine's max batch size and token budget, and with `enable_padding` replays a
generation-only step of b sequences (per attention-DP rank: the ranks agree on the largest) as the
smallest captured size >= b, adding dummy requests of one cached token (tensorrt_llm/_torch/pyexecutor/
model_engine.py, `PyTorchModelEngine.__init__`: `bs <= self.max_num_tokens and bs <= self.batch_size`;
`_get_padded_batch`; the blog "Tuning CUDA Graph Batch Sizes": "up to 50% padding waste"). The dummy rows
cost every per-token op (GEMMs, MoE, norms, collectives, logits) and next to no attention. A batch above
the largest captured size runs eagerly, unpadded (not priced here).

Which steps are generation-only: every decode step, and every decode step of a generate run that prefills
its batch first; with chunked prefill, the steps that carry no prompt, 1 - cosim.engines.eager.
prompt_step_fraction (independent arrivals; with attention DP one rank's prompt makes the whole step eager).
"""

from __future__ import annotations

import bisect

from cosim.specs.scenario import Scenario


def _running_per_rank(scenario: Scenario) -> int:
    """Sequences one attention-DP rank runs (the busiest, when the batch does not split evenly)."""
    return -(-scenario.batch // scenario.parallelism.dp)


def graph_batch(scenario: Scenario) -> int | None:
    """Per-rank batch a generation-only step replays at (the smallest captured size at least the running
    batch), or None when the scenario captures no sizes or the batch is above the largest one."""
    sizes = scenario.cuda_graph_batch_sizes
    if not sizes:
        return None
    ordered = sorted(sizes)
    at = bisect.bisect_left(ordered, _running_per_rank(scenario))
    return ordered[at] if at < len(ordered) else None


def padded_rows(scenario: Scenario) -> int:
    """Dummy sequences a generation-only step adds on each rank (0 when it is not padded)."""
    padded = graph_batch(scenario)
    return 0 if padded is None else padded - _running_per_rank(scenario)

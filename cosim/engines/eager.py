"""Host-bound steps: an engine that launches prompt-carrying steps op by op pays at least their host time.

TensorRT-LLM's PyTorch backend replays CUDA graphs only for generation-only batches; a step with a prompt
(a context request, whole or chunked) is launched from Python kernel by kernel. For MoE layers that host
path (routing, quantisation, the fused-MoE wrapper, expert-parallel collectives) outlasts the GPU work of
a fast GPU, so such a step takes max(GPU time, host time). With attention data parallelism a graph runs only
when every rank is generation-only, so one rank's prompt makes the whole step eager.

In the steady state of continuous batching `batch / steps_per_request` prompts enter per step (Little's law;
`output_len` steps, fewer when speculative steps emit several tokens).
Arriving independently, a step carries at least one with probability 1 - exp(-prompts per step); when the
ranks synchronise their prompts (TensorRT-LLM's attention-DP balance) a step carries about one per rank,
so prompt_steps / steps = min(1, prompts per step / dp).
"""

from __future__ import annotations

import math

import numpy as np

from cosim.specs.scenario import Scenario

#: serving stacks that launch prompt-carrying steps without CUDA graphs (trtllm-bench and trtllm-pytorch run
#: TensorRT-LLM's PyTorch backend); `--stack` on estimate and serve turns the floor on for them
EAGER_PROMPT_STACKS = ("trtllm-bench", "trtllm-pytorch")


def eager_host_s(workload, scenario: Scenario) -> float:
    """Host seconds of one eager iteration through the replica: its MoE layers x the per-layer host time.

    With pipeline parallelism each stage's host launches its layers for every one of the pp micro-batches
    of an iteration (pp x layers / pp), so the iteration's host time counts every layer once, like the
    interleaved step time it is compared with (cosim.engines.phases)."""
    from cosim.engines.efficiency import load_engine_defaults

    moe = getattr(workload, "moe", None)
    if moe is None:
        return 0.0
    per_layer = float(load_engine_defaults()["eager_moe_layer_host_s"]["value"])
    return per_layer * workload.moe_layers


def ranks_coupled(workload, scenario: Scenario) -> bool:
    """Whether the attention-DP ranks run each step together: an MoE model's expert layers synchronise them."""
    return getattr(workload, "moe", None) is not None and scenario.parallelism.dp > 1


def prompt_step_fraction(workload, scenario: Scenario) -> float:
    """Share of a generate run's steps that carry at least one prompt (see the module doc)."""
    dp = scenario.parallelism.dp
    coupled = ranks_coupled(workload, scenario)  # attention-DP ranks share each step
    prompts = scenario.batch / scenario.steps_per_request / (1 if coupled else dp)
    if coupled and scenario.dp_prompt_balance:
        return min(1.0, prompts / dp)
    return 1.0 - math.exp(-prompts)


def eager_extra_s(workload, scenario: Scenario, step_s):
    """Seconds one average step gains from host-bound prompt steps: fraction x max(0, host - GPU step).

    `step_s` may be an array (one GPU step time per design point)."""
    if not (scenario.phase == "generate" and scenario.chunked_prefill and scenario.eager_prompt_steps):
        return np.zeros_like(np.asarray(step_s, dtype=np.float64))
    host = eager_host_s(workload, scenario)
    return prompt_step_fraction(workload, scenario) * np.maximum(0.0, host - np.asarray(step_s, dtype=np.float64))

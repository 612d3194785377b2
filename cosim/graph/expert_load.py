"""The busiest expert-parallel rank: how many experts it touches when few tokens are routed.

Each token routes to `k` distinct experts out of `E`, uniformly. Expert parallelism splits the experts into
`G` = ep groups of E / G, and every MoE layer ends in a collective (the TP all-reduce or the EP combine) that
waits for the slowest group. With many tokens every expert is touched and the groups are even; with few
(batch-1 decode, a handful of draft tokens) the busiest group touches well above the mean and reads that many
experts' weights: at one token of DeepSeek-R1 (k = 8 of 256) the busiest of 4 groups touches 3.51 experts in
expectation, against a mean of 2 (TensorRT-LLM's DeepSeek-R1 min-latency blog moves from EP8 to EP4 and EP2
"for better workload balance" for this reason).

Computed exactly up to EXACT_MAX_TOKENS tokens, not sampled: by the experts' symmetry the touched set, given its size u, is a uniform
u-subset of the E experts, so the groups' counts are multivariate hypergeometric given u; u itself follows
the occupancy recursion of one k-subset per token (each token adds j new experts with probability
C(E - u, j) C(u, k - j) / C(E, k)). P(busiest <= x | u) is the z^u coefficient of
(sum_{i <= x} C(E/G, i) z^i)^G over C(E, u).
"""

from __future__ import annotations

import functools
import math

import numpy as np

#: below this expected number of untouched experts every expert counts as touched (groups even)
ALL_TOUCHED_UNTOUCHED = 1e-9
#: token counts computed exactly; beyond, and above EXACT_MAX_EXPERTS experts (where the binomial coefficients
#: leave float64), the groups' counts are taken as independent binomials: within 1.3% of the exact ratio from
#: 16 tokens on (every E, k, G of the catalog checked), where it is off by up to 31% at one token and k = 1
EXACT_MAX_TOKENS = 16
EXACT_MAX_EXPERTS = 1024


def _touched_distribution(num_experts: int, k: int, tokens: int) -> np.ndarray:
    """P(U = u), u = 0..E: distinct experts touched by `tokens` tokens of k distinct experts each."""
    E = num_experts
    from scipy.stats import hypergeom

    u = np.arange(E + 1)
    # step[u, j]: a token adds j new experts when u are already touched (E - u untouched, k drawn)
    step = np.stack([hypergeom.pmf(j, E, E - u, k) for j in range(k + 1)], axis=1)
    step = np.nan_to_num(step)
    dist = np.zeros(E + 1)
    dist[0] = 1.0
    for _ in range(tokens):
        new = np.zeros(E + 1)
        for j in range(k + 1):
            new[j:] += dist[: E + 1 - j] * step[: E + 1 - j, j]
        dist = new
    return dist


def _poly_power(coeffs: np.ndarray, power: int, degree: int) -> np.ndarray:
    """coeffs(z) ** power, truncated above `degree` (repeated squaring)."""
    result = np.zeros(degree + 1)
    result[0] = 1.0
    base = coeffs[: degree + 1].copy()
    while power:
        if power & 1:
            result = np.convolve(result, base)[: degree + 1]
        power >>= 1
        if power:
            base = np.convolve(base, base)[: degree + 1]
    return result


@functools.lru_cache(maxsize=64)
def _expected_busiest_given_size(num_experts: int, groups: int) -> np.ndarray:
    """E[max over groups of touched experts | U = u], u = 0..E (multivariate hypergeometric counts)."""
    E, n = num_experts, num_experts // groups
    binom_n = np.array([math.comb(n, i) for i in range(n + 1)], dtype=float)
    total = np.array([math.comb(E, u) for u in range(E + 1)], dtype=float)
    expected = np.zeros(E + 1)
    for x in range(n):  # E[max] = sum over x < n of P(max > x)
        ways = _poly_power(np.where(np.arange(n + 1) <= x, binom_n, 0.0), groups, E)
        expected += 1.0 - np.minimum(ways / total, 1.0)
    return expected


def _binomial_busiest(num_experts: int, k: int, tokens: float, groups: int) -> float:
    """E[max of `groups` independent Binomial(E / G, p)] with p the chance one expert is touched."""
    from scipy.stats import binom

    n = num_experts // groups
    p = 1.0 - (1.0 - k / num_experts) ** tokens
    x = np.arange(n)
    return float(np.sum(1.0 - binom.cdf(x, n, p) ** groups))


@functools.lru_cache(maxsize=4096)
def _busiest_int(num_experts: int, k: int, tokens: int, groups: int) -> float:
    """Expected experts the busiest group touches, for an integer token count >= 1."""
    E = num_experts
    if E * (1.0 - k / E) ** tokens < ALL_TOUCHED_UNTOUCHED:
        return E / groups
    if E > EXACT_MAX_EXPERTS or tokens > EXACT_MAX_TOKENS:
        return _binomial_busiest(E, k, tokens, groups)
    return float(_touched_distribution(E, k, tokens) @ _expected_busiest_given_size(E, groups))


def busiest_group_ratio(num_experts: int, experts_per_token: int, tokens: float, groups: int) -> float:
    """Experts the busiest of `groups` expert-parallel groups touches over the mean group's (>= 1), when
    `tokens` tokens (fractional: an average step, interpolated between its two integer neighbours; below
    one, as one) each route to `experts_per_token`."""
    if groups <= 1 or tokens <= 0 or num_experts % groups:
        return 1.0
    E, k = num_experts, min(experts_per_token, num_experts)
    t = max(1.0, float(tokens))
    lo = math.floor(t)
    busiest = _busiest_int(E, k, lo, groups)
    if t > lo:
        busiest += (t - lo) * (_busiest_int(E, k, lo + 1, groups) - busiest)
    mean = E / groups * (1.0 - (1.0 - k / E) ** t)
    return max(1.0, min(busiest, E / groups) / mean)

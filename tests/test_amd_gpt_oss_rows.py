"""gpt-oss-120b on AMD's MLPerf v6.1 vLLM harness (MI355X, MI350X): vLLM's MXFP4 MoE path on ROCm keeps the
activations in BF16 (W4A16), so the experts multiply at the BF16 rate, a quarter of the chips' FP4 rate.

Values asserted are the published results, the spec's datasheet peaks, and bounds a prediction must meet."""

from __future__ import annotations

import pytest

from cosim.engines.calibration import calibrated_params
from cosim.specs.loader import load_hardware
from cosim.validate.mapping import load_mapping
from cosim.validate.predict import predict
from cosim.validate.reference import load_measurements

MAPPING = load_mapping()
MEASURED = {r.id: r.value for r in load_measurements()}
AMD_ROWS = ["mlperf-v6.1-mi355x-x8-gpt-oss-120b-offline", "mlperf-v6.1-mi355x-x72-gpt-oss-120b-offline",
            "mlperf-v6.1-mitac-mi350x-x8-gpt-oss-120b-offline"]


def test_the_mi355x_multiplies_bf16_at_a_quarter_of_its_fp4_rate():
    peaks = load_hardware("mi355x").compute.peak_flops_per_s
    assert peaks.fp4.value / peaks.bf16.value == pytest.approx(4.0, rel=0.01)


@pytest.mark.parametrize("row_id", AMD_ROWS)
def test_amd_gpt_oss_rows_price_w4a16_experts(row_id):
    """MLPerf's gpt-oss prompts average 5,000 tokens, so prefill's expert GEMMs dominate: priced at the FP4 rate
    these runs would be 1.45x or more the published rates; at the BF16 rate each is within 20%."""
    q = MAPPING.rows[row_id]
    assert (q.precision, q.activation_precision) == ("fp4", "bf16")
    assert "mxfp4_w4a16_moe_quant_config" in q.assumed
    params = calibrated_params(load_hardware(q.hardware))
    w4a16 = predict(q, MAPPING, params)[0]
    w4a4 = predict(q.model_copy(update={"activation_precision": None}), MAPPING, params)[0]
    measured = MEASURED[row_id]
    assert w4a4 > 1.45 * measured
    assert w4a16 == pytest.approx(measured, rel=0.20)

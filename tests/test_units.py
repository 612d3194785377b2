"""Unit parsing at spec-load time: quantities with units become SI floats; bad units fail readably."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosim.specs.units import parse_quantity


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("3.35 TB/s", "bytes_per_s", 3.35e12),  # decimal: vendor TB = 1e12 bytes
        ("80 GB", "bytes", 80e9),
        ("80 GiB", "bytes", 80 * 2**30),
        ("48 MiB", "bytes", 48 * 2**20),
        ("1.98 GHz", "hz", 1.98e9),
        ("700 W", "w", 700.0),
        ("23 kW", "w", 23e3),
        ("989.4 TFLOPS", "flops_per_s", 989.4e12),
        ("1979 TOPS", "flops_per_s", 1979e12),
        ("9 PFLOPS", "flops_per_s", 9e15),
        ("3.9 pJ/bit", "j_per_byte", 3.9e-12 * 8),
        ("31.2 pJ/byte", "j_per_byte", 31.2e-12),
        ("3 us", "s", 3e-6),
        ("400 Gb/s", "bytes_per_s", 50e9),  # NIC rates: gigabits, not gilberts
        ("100 Gbps", "bytes_per_s", 12.5e9),
        ("608.4 mm^2", "m2", 608.4e-6),
        ("2,039 GB/s", "bytes_per_s", 2.039e12),
        ("$2.99/hour", "usd_per_hour", 2.99),
        ("31905", "usd", 31905.0),
    ],
)
def test_parse_quantity(text, kind, expected):
    assert parse_quantity(text, kind) == pytest.approx(expected, rel=1e-12)


def test_plain_numbers_are_already_si():
    assert parse_quantity(80e9, "bytes") == 80e9
    assert parse_quantity(700, "w") == 700.0
    assert parse_quantity("1e12", "flops_per_s") == 1e12


def test_unknown_unit_raises_readable_value_error():
    with pytest.raises(ValueError, match=r"unknown unit in '3\.35 TQ/s'"):
        parse_quantity("3.35 TQ/s", "bytes_per_s")


@pytest.mark.parametrize(("text", "kind"), [("700 W", "bytes"), ("80 GB", "bytes_per_s"), ("1.98 GHz", "w")])
def test_wrong_dimension_raises_readable_value_error(text, kind):
    with pytest.raises(ValueError, match=r"is not convertible to"):
        parse_quantity(text, kind)


@pytest.mark.parametrize("value", [True, None, [1, 2], {"a": 1}])
def test_non_quantities_rejected(value):
    with pytest.raises(ValueError):
        parse_quantity(value, "bytes")


def test_malformed_dollar_amount():
    with pytest.raises(ValueError, match="dollar amount"):
        parse_quantity("two dollars", "usd")


_mantissa = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(_mantissa)
def test_decimal_and_binary_prefixes(x):
    text = f"{x!r}"
    assert parse_quantity(f"{text} GB", "bytes") == pytest.approx(x * 1e9, rel=1e-12)
    assert parse_quantity(f"{text} GiB", "bytes") == pytest.approx(x * 2**30, rel=1e-12)
    assert parse_quantity(f"{text} TB/s", "bytes_per_s") == pytest.approx(x * 1e12, rel=1e-12)


@given(_mantissa)
def test_bits_are_an_eighth_of_bytes(x):
    per_bit = parse_quantity(f"{x!r} pJ/bit", "j_per_byte")
    per_byte = parse_quantity(f"{x!r} pJ/byte", "j_per_byte")
    assert per_bit == pytest.approx(8 * per_byte, rel=1e-12)
    assert parse_quantity(f"{x!r} Gb/s", "bytes_per_s") == pytest.approx(x * 1e9 / 8, rel=1e-12)
    assert parse_quantity(f"{x!r} Gbps", "bytes_per_s") == pytest.approx(x * 1e9 / 8, rel=1e-12)


@given(_mantissa)
def test_prefix_scaling_is_consistent(x):
    assert parse_quantity(f"{x!r} TFLOPS", "flops_per_s") == pytest.approx(
        1e3 * parse_quantity(f"{x!r} GFLOPS", "flops_per_s"), rel=1e-12)
    assert parse_quantity(f"{x!r} kW", "w") == pytest.approx(1e3 * x, rel=1e-12)

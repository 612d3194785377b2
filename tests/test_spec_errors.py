"""Bad spec input: every case exits 2 with exactly one readable line on stderr naming the file and field.

Cases follow issue 2 "Bad input": a missing field, a misspelt key (with the right key suggested), a
negative and a zero bandwidth, an unknown unit, malformed YAML/JSON, a non-mapping document, an
unknown source key, and an unknown catalog name (with close matches suggested).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from cosim.cli.main import main

REPO = Path(__file__).resolve().parent.parent
BAD = REPO / "tests" / "data" / "bad_specs"
BASE = yaml.safe_load((REPO / "hardware_specs" / "h100-sxm.yaml").read_text())


def _hbm(doc):
    return next(level for level in doc["memory"] if level["name"] == "hbm")


def _drop_tdp(doc):
    del doc["power"]["tdp_w"]


def _misspell_tdp(doc):
    doc["power"]["tdp_ww"] = doc["power"].pop("tdp_w")


def _misspell_top(doc):
    doc["vendorr"] = doc.pop("vendor")


def _negative_bw(doc):
    _hbm(doc)["bandwidth_bytes_per_s"]["value"] = "-3.35 TB/s"


def _zero_bw(doc):
    doc["interconnect"]["scale_up"]["bandwidth_bytes_per_s"]["value"] = "0 GB/s"


def _unknown_unit(doc):
    _hbm(doc)["bandwidth_bytes_per_s"]["value"] = "3.35 TQ/s"


def _wrong_dimension(doc):
    _hbm(doc)["capacity_bytes"]["value"] = "80 W"


def _unknown_source(doc):
    doc["power"]["tdp_w"]["source"] = "no_such_source"


# (case id, mutation, text the one error line must contain: the field, then the problem)
GENERATED = [
    ("missing-field", _drop_tdp, ["power.tdp_w", "required field is missing"]),
    ("misspelt-key", _misspell_tdp, ["power.tdp_w"]),
    ("misspelt-top-key", _misspell_top, ["vendor"]),
    ("negative-bandwidth", _negative_bw, ["bandwidth_bytes_per_s", "must be > 0"]),
    ("zero-bandwidth", _zero_bw, ["interconnect.scale_up.bandwidth_bytes_per_s", "must be > 0"]),
    ("unknown-unit", _unknown_unit, ["bandwidth_bytes_per_s", "unknown unit in '3.35 TQ/s'"]),
    ("wrong-dimension", _wrong_dimension, ["capacity_bytes", "not convertible to byte"]),
    ("unknown-source", _unknown_source, ["power.tdp_w", "no_such_source", "not in 'sources'"]),
]

STATIC = [
    ("malformed-yaml", "malformed.yaml", ["malformed YAML at line"]),
    ("malformed-json", "malformed.json", ["malformed JSON at line"]),
    ("non-mapping", "not_a_mapping.yaml", ["expected a mapping at the top level, got list"]),
]


def _write_case(tmp_path: Path, case: str, mutate) -> Path:
    doc = copy.deepcopy(BASE)
    mutate(doc)
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _cases(tmp_path: Path):
    for case, mutate, needles in GENERATED:
        yield case, _write_case(tmp_path, case, mutate), needles
    for case, name, needles in STATIC:
        yield case, BAD / name, needles


def _one_error_line(capsys) -> tuple[str, str]:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got {captured.err!r}"
    assert "Traceback" not in captured.err
    return lines[0], captured.out


ALL_IDS = [c[0] for c in GENERATED] + [c[0] for c in STATIC]


@pytest.mark.parametrize("case", ALL_IDS)
@pytest.mark.parametrize("argv", [["specs", "show"], ["specs", "check", "--format", "json"]])
def test_bad_spec_exits_2_with_one_line_naming_file_and_field(tmp_path, capsys, case, argv):
    path, needles = next((p, n) for c, p, n in _cases(tmp_path) if c == case)
    code = main([*argv, str(path)])
    line, _ = _one_error_line(capsys)
    assert code == 2
    assert line.startswith("error: ") and str(path) in line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"


@pytest.mark.parametrize("case", ["missing-field", "unknown-unit", "malformed-yaml"])
def test_specs_check_table_reports_one_fail_line(tmp_path, capsys, case):
    path, needles = next((p, n) for c, p, n in _cases(tmp_path) if c == case)
    assert main(["specs", "check", str(path)]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    fails = [line for line in out if line.startswith("FAIL")]
    assert len(fails) == 1 and str(path) in fails[0] and needles[0] in fails[0]


def test_specs_check_table_format_also_writes_the_error_to_stderr(tmp_path, capsys):
    path = _write_case(tmp_path, "missing-field", _drop_tdp)
    assert main(["specs", "check", str(path)]) == 2
    line, _ = _one_error_line(capsys)
    assert str(path) in line and "power.tdp_w" in line


@pytest.mark.parametrize(("mutate", "typo", "right"), [(_misspell_tdp, "tdp_ww", "tdp_w"),
                                                       (_misspell_top, "vendorr", "vendor")])
def test_misspelt_key_message_names_the_typo_and_suggests_the_right_key(tmp_path, capsys, mutate, typo, right):
    path = _write_case(tmp_path, typo, mutate)
    assert main(["specs", "show", str(path)]) == 2
    line, _ = _one_error_line(capsys)
    assert typo in line and "unknown key" in line and f"did you mean '{right}'" in line


def test_check_reports_good_and_bad_files_and_exits_2(tmp_path, capsys):
    bad = _write_case(tmp_path, "zero-bandwidth", _zero_bw)
    good = REPO / "hardware_specs" / "h100-sxm.yaml"
    assert main(["specs", "check", str(good), str(bad), "--format", "json"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().count("\n") == 0 and str(bad) in captured.err
    assert '"ok": true' in captured.out and '"ok": false' in captured.out


def test_missing_file_is_bad_input(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert main(["specs", "show", str(missing)]) == 2
    line, _ = _one_error_line(capsys)
    assert str(missing) in line and "file not found" in line


@pytest.mark.parametrize(("name", "suggestion"), [("h100sxm", "h100-sxm"), ("tpu-v5", "tpu-v5e"),
                                                  ("mi300", "mi300x"), ("gaudi", "gaudi2")])
def test_unknown_catalog_name_suggests_close_matches(capsys, name, suggestion):
    assert main(["specs", "show", name]) == 2
    line, _ = _one_error_line(capsys)
    assert f"unknown spec '{name}'" in line
    assert "did you mean" in line and suggestion in line


def test_unknown_name_without_close_match(capsys):
    assert main(["specs", "show", "zzzzzzzz-qqqq"]) == 2
    line, _ = _one_error_line(capsys)
    assert "unknown spec 'zzzzzzzz-qqqq'" in line and "did you mean" not in line


def test_loader_unknown_hardware_name_suggests_or_points_to_list():
    from cosim.errors import CosimInputError
    from cosim.specs.loader import load_hardware

    with pytest.raises(CosimInputError, match=r"unknown hardware 'h200sxm'; did you mean h200-sxm"):
        load_hardware("h200sxm")
    with pytest.raises(CosimInputError, match=r"cosim specs list"):
        load_hardware("zzzzzzzz-qqqq")


def test_yaml_is_loaded_with_the_safe_loader(tmp_path, capsys):
    # a python-object tag must be rejected as malformed, never constructed
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n", encoding="utf-8")
    assert main(["specs", "show", str(path)]) == 2
    line, _ = _one_error_line(capsys)
    assert str(path) in line and "malformed YAML" in line

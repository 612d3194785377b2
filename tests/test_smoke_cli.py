"""The CLI skeleton: catalog listing, one-line errors with exit code 2."""

import json

from cosim.cli.main import main


def test_specs_list_json_lists_slugs(capsys):
    assert main(["specs", "list", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "h100-sxm" in [h["name"] for h in data["hardware"]]
    assert "llama-3.1-8b" in [w["name"] for w in data["workloads"]]


def test_unknown_name_suggests_close_match(capsys):
    assert main(["specs", "show", "h100sxm"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "did you mean h100-sxm" in err

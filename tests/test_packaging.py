"""The installed package carries its catalogs, so `pip install .` works outside the repo."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_every_catalog_yaml(tmp_path):
    pytest.importorskip("hatchling")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(REPO),
         "-w", str(tmp_path)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("cosim-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("hardware_specs", "workloads"):
        expected = {f"cosim/_catalog/{kind}/{p.name}" for p in (REPO / kind).glob("*.yaml")}
        assert expected and expected <= names


def test_loader_prefers_installed_catalog(tmp_path, monkeypatch):
    """An installed layout (cosim/_catalog/...) is found without the repo checkout."""
    from cosim.specs import loader

    pkg = tmp_path / "cosim"
    (pkg / "_catalog" / "hardware_specs").mkdir(parents=True)
    monkeypatch.setattr(loader, "_PACKAGE_DIR", pkg)
    assert loader.catalog_dir("hardware_specs") == pkg / "_catalog" / "hardware_specs"

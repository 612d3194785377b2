"""The explorer starts on the built-in catalog (AppTest runs the real script in-process)."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def test_app_renders_catalog_without_exception():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert len(at.dataframe) >= 2

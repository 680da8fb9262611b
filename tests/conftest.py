"""Test-session setup: a private runs folder, offline hub, and upstream labs run before nbval checks a lab."""
import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_configure(config):
    # One runs folder for the whole session, shared by xdist workers (they inherit the environment).
    if "LABLIB_TEST_RUNS" not in os.environ:
        os.environ["LABLIB_TEST_RUNS"] = tempfile.mkdtemp(prefix="lablib-test-runs-")
    os.environ["LABLIB_RUNS"] = os.environ["LABLIB_TEST_RUNS"]
    jupyter = Path(os.environ["LABLIB_TEST_RUNS"]) / ".jupyter"
    os.environ.setdefault("JUPYTER_RUNTIME_DIR", str(jupyter / "runtime"))
    os.environ.setdefault("JUPYTER_DATA_DIR", str(jupyter / "data"))


def pytest_runtest_setup(item):
    """Before nbval runs a golden notebook's first cell, make sure the labs it consumes from have run."""
    if item.__class__.__name__ != "IPyNbCell" or getattr(item, "cell_num", 0) != 0:
        return
    from lablib import goldens, running

    name = Path(str(item.fspath)).stem
    lab = next((lab for lab in running.manifest() if lab.dirname == name), None)
    if lab is not None:
        goldens.ensure_upstream(lab, Path(os.environ["LABLIB_RUNS"]))


@pytest.fixture(scope="session")
def runs_root() -> Path:
    return Path(os.environ["LABLIB_RUNS"])

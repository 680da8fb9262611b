"""Every lab runs headlessly under `smoke`, and its nbval goldens are real and current."""
import json

import nbformat
import pytest

from lablib import goldens, running

LABS = running.manifest()


def test_the_whole_course_runs_under_smoke(runs_root):
    rows = running.run([], ["profile=smoke"], runs_root, progress=False, echo=lambda *_: None)
    assert [r["lab"] for r in rows] == [lab.id for lab in LABS]
    m = json.loads((runs_root / "smoke" / "01_pretraining" / "metrics.json").read_text())
    assert m["val_loss"] < m["unigram_loss"] < m["val_loss_before"]
    assert (runs_root / "smoke" / "01_pretraining" / "artifacts" / "model" / "model.safetensors").exists()


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.dirname)
def test_golden_is_current(lab):
    """Changed a lab? Its goldens must be regenerated (`make goldens`), or this fails."""
    path = goldens.golden_path(lab)
    assert path.exists(), f"no golden for lab {lab.id}: run `make goldens`"
    golden = nbformat.read(str(path), as_version=4)
    source = nbformat.read(str(lab.notebook_path), as_version=4)
    assert goldens.lab_code_cells(golden) == goldens.lab_code_cells(source), \
        f"{lab.notebook} changed since its golden was made: run `make goldens`"


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.dirname)
def test_golden_checks_real_outputs(lab):
    """nbval passes a notebook without outputs; make sure every checked cell has some."""
    golden = nbformat.read(str(goldens.golden_path(lab)), as_version=4)
    code = [c for c in golden.cells if c.cell_type == "code"]
    checked = [c for c in code if goldens.CHECK_TAG in c.metadata.get("tags", [])]
    assert len(checked) >= 5, f"lab {lab.id}: only {len(checked)} cells are compared by nbval"
    assert all(c.outputs for c in checked), f"lab {lab.id}: a checked cell has no stored output"
    assert all(c.execution_count for c in code), f"lab {lab.id}: golden has cells that never ran"
    assert not any(o.output_type == "error" for c in code for o in c.outputs)

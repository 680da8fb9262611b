"""Every lab runs headlessly under `smoke`, its checks pass, and its outputs carry no stray stderr."""
import json

import nbformat

from lablib import running

LABS = running.manifest()


def test_the_whole_course_runs_under_smoke(runs_root):
    rows = running.run([], ["profile=smoke"], runs_root, progress=False, echo=lambda *_: None)
    assert [r["lab"] for r in rows] == [lab.id for lab in LABS]
    m = json.loads((runs_root / "smoke" / "01_pretraining" / "metrics.json").read_text())
    assert m["val_loss"] < m["unigram_loss"] < m["val_loss_before"]
    assert (runs_root / "smoke" / "01_pretraining" / "artifacts" / "model" / "model.safetensors").exists()
    # nbval compares only the checked cells; a warning or error on stderr in *any* cell of any lab fails here.
    for lab in LABS:
        nb = nbformat.read(str(running.run_dir(lab, "smoke", runs_root) / "notebook.ipynb"), as_version=4)
        for i, cell in enumerate(nb.cells):
            for out in cell.get("outputs", []):
                assert not (out.output_type == "stream" and out.name == "stderr"), \
                    f"lab {lab.id}, cell {i} wrote to stderr:\n{out.text[:2000]}"

"""Goldens: current, real, made on kernels no machine picks by itself, and compared within stated tolerances."""
import os

import nbformat
import pytest

from lablib import goldens, running

LABS = running.all_labs()  # both tracks: the own track's goldens run the shipped example domain


@pytest.mark.parametrize("lab", LABS, ids=goldens.golden_name)
def test_golden_is_current(lab):
    """Changed a lab? Its goldens must be regenerated (`make goldens`), or this fails."""
    path = goldens.golden_path(lab)
    assert path.exists(), f"no golden for lab {lab.key}: run `make goldens`"
    golden = nbformat.read(str(path), as_version=4)
    source = nbformat.read(str(lab.notebook_path), as_version=4)
    assert goldens.lab_code_cells(golden) == goldens.lab_code_cells(source), \
        f"{lab.notebook} changed since its golden was made: run `make goldens`"


@pytest.mark.parametrize("lab", LABS, ids=goldens.golden_name)
def test_golden_checks_real_outputs(lab):
    """nbval passes a notebook without outputs; make sure every checked cell has some."""
    golden = nbformat.read(str(goldens.golden_path(lab)), as_version=4)
    code = [c for c in golden.cells if c.cell_type == "code"]
    checked = [c for c in code if goldens.CHECK_TAG in c.metadata.get("tags", [])]
    assert len(checked) >= 5, f"lab {lab.key}: only {len(checked)} cells are compared by nbval"
    assert all(c.outputs for c in checked), f"lab {lab.key}: a checked cell has no stored output"
    assert all(c.execution_count for c in code), f"lab {lab.key}: golden has cells that never ran"
    assert not any(o.output_type == "error" for c in code for o in c.outputs)
    assert not any(o.output_type == "stream" and o.name == "stderr" for c in code for o in c.outputs), \
        f"lab {lab.key}: its golden holds stderr output (library noise belongs silenced at its source)"


def test_tolerances_name_real_checked_cells():
    """A tolerance for a cell that is gone, or not checked, would silently compare nothing."""
    table = goldens.tolerances()
    for lab in LABS:
        golden = nbformat.read(str(goldens.golden_path(lab)), as_version=4)
        checked = {c.get("id") for c in golden.cells if goldens.CHECK_TAG in c.metadata.get("tags", [])}
        missing = set(table.get(goldens.golden_name(lab), {})) - checked
        assert not missing, f"tolerances.yaml: {goldens.golden_name(lab)} lists cells that are not checked: {sorted(missing)}"
    assert set(table) <= {goldens.golden_name(lab) for lab in LABS}


def test_goldens_are_checked_under_other_cpu_kernels():
    """The goldens are made under GOLDEN_ENV; this run must use other kernels, or it proves no portability."""
    made = {goldens.golden_capability(lab) for lab in LABS}
    assert len(made) == 1 and None not in made, f"goldens made under {made}: regenerate them all (`make goldens`)"
    (made,) = made
    assert made == goldens.cpu_capability(goldens.GOLDEN_ENV)
    here = goldens.cpu_capability()
    if here == made:
        msg = (f"the goldens were made under CPU capability {made} and this run checks them under {made} too, "
               "which proves nothing about other machines: unset ATEN_CPU_CAPABILITY (or set it to avx2)")
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.mark.parametrize("golden, got, ok", [
    ("validation loss: 5.93 -> 1.59 nats/token", "validation loss: 5.93 -> 1.63 nats/token", True),
    ("validation loss: 5.93 -> 1.59 nats/token", "validation loss: 5.93 -> 1.70 nats/token", False),
    ("exact match 64% of 14", "exact match 68% of 14", True),  # 0.64 vs 0.68: within 0.05
    ("exact match 64% of 14", "exact match 71% of 14", False),
    ("45,248 tokens, RM +2.92", "45,248 tokens, RM +2.90", True),
    ("45,248 tokens", "45,250 tokens", False),  # thousands separators: one number, 2 apart
    ("RM +0.01 (0.00 – 0.04)", "RM -0.01 (0.00 – 0.03)", True),  # a sign flip near zero is a number change
    ("checks passed", "checks failed", False),  # text around the numbers must match exactly
    ("1.0e-05 within 1e-4", "3.2e-05 within 1e-4", True),
    ("a, b: 1, 2, 3", "a, b: 1, 2", False),  # a number missing
    ("memory x0.43", "memory x0.45", True),
])
def test_compare_text(golden, got, ok):
    why = goldens.compare_text(golden, got, atol=0.05, rtol=0.0)
    assert (why is None) == ok, why


def test_compare_text_text_only_and_column_padding():
    golden, got = "  rm:   -0.94 ->   -0.57\nchecks passed", "  rm:   -0.05 ->    0.36\nchecks passed"
    assert goldens.compare_text(golden, got, text_only=True) is None  # a sign moved the padding: still equal
    assert goldens.compare_text(golden, got, atol=0.5) is not None
    assert goldens.compare_text(golden, got.replace("passed", "failed"), text_only=True) is not None
    assert goldens.compare_text("a 1 b 2", "a 1 b", text_only=True) is not None


def test_compare_text_relative_tolerance_and_message():
    assert goldens.compare_text("168,500 tokens/s", "170,000 tokens/s", 0.0, 0.01) is None
    why = goldens.compare_text("a\nloss 3.11 nats\nb", "a\nloss 3.50 nats\nb", 0.1, 0.05)
    assert "3.5" in why and "3.11" in why and "'loss 3.50 nats'" in why

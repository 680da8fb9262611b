"""Releases and grading: what an instructor relies on, so the boundary with submissions is explicit.

``releases``    the student notebooks (solutions stubbed, outputs cleared): ``lab release``.
``submission``  one submission run in the sandbox under its limits; what it wrote read back as data only.
``sandbox``     bubblewrap, the sandbox users, the cleared environment and the limits.
``wire``        the data-only format of everything that crosses from the submission's side.
``verdicts``    the grader's own verdict: the student's functions in an exercise process, the checks here.
``scores``      the headline metrics the grader computes from the saved weights.
``gradebook``   a folder of submissions of one lab (``lab grade LAB FOLDER``); ``course``: a class folder.

Names are re-exported here lazily: the exercise process imports this package and must stay light.
"""
import importlib

_EXPORTS = {
    "releases": ("GradingError", "STUB", "strip_solutions", "release", "exercise_calls", "exercise_names",
                "exercise_sources"),
    "sandbox": ("Limits",),
    "verdicts": ("recheck",),
    "submission": ("inspect", "run_one", "self_reported"),
    "gradebook": ("grade", "submission_files", "open_gradebook", "write_markdown", "GRADEBOOK_FIXED"),
    "course": ("grade_class", "class_submissions", "write_course"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}


def sandbox_available() -> bool:
    """Whether the grading sandbox (bubblewrap) can start here."""
    from .sandbox import available

    return available()


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""A whole class: one folder per student, any labs in it (``lab grade CLASS/``), graded lab by lab into a course
gradebook and a feedback file per student."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from .gradebook import GRADEBOOK_FIXED, TRAILING, grade, headline, write_markdown
from .releases import GradingError
from .submission import _START


def _code(path: Path) -> str:
    """A notebook's code cells as text ('' if it is not a readable notebook)."""
    try:
        cells = json.loads(path.read_text(errors="replace"))["cells"]
        return "\n".join("".join(c["source"]) for c in cells if c.get("cell_type") == "code")
    except (ValueError, KeyError, TypeError):
        return ""


def class_submissions(folder: Path) -> dict:
    """``{lab id: {student: notebook}}`` from a class folder holding one sub-folder per student; a notebook's lab
    is the one its ``lablib.start("NN", ...)`` call names. Anything else is listed under lab ``"?"``."""
    if not folder.is_dir() or not any(p.is_dir() for p in folder.iterdir()):
        raise GradingError(f"{folder}: not a class folder (one sub-folder per student)")
    out: dict = {}
    for student in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(p for p in student.iterdir() if p.is_file() and not p.name.startswith(".")):
            labs = sorted(set(_START.findall(_code(path)))) if path.suffix == ".ipynb" else []
            lab = labs[0] if len(labs) == 1 else "?"
            if student.name in out.setdefault(lab, {}):
                raise GradingError(f"{student}: two notebooks of lab {lab} ({out[lab][student.name].name}, {path.name})")
            out[lab][student.name] = path
    return out


def grade_class(folder: str | Path, out: str | Path, overrides=(), echo=print, **kwargs) -> Path:
    """Grade a class folder (:func:`class_submissions`) lab by lab with :func:`grade` (each lab's gradebook in
    ``out/labs/NN``, resumable), then write the course gradebook -- ``out/course.csv`` and ``course.md``, one row
    per student, one column per exercise, with totals -- and ``out/feedback/<student>.md``, what failed and why
    and each lab's headline metrics, ready to send back. Returns the course CSV's path."""
    import shutil

    from ..course import running

    by_lab = class_submissions(Path(folder))
    out = Path(out).resolve()
    books = {}
    for lab_id in sorted(k for k in by_lab if k != "?"):
        lab = running.find_lab(lab_id)
        staged = out / "labs" / lab_id / "submissions"  # the student's name as the file name; the file is copied
        staged.mkdir(parents=True, exist_ok=True)
        for student, path in by_lab[lab_id].items():
            if not (staged / f"{student}.ipynb").exists():
                shutil.copyfile(path, staged / f"{student}.ipynb")
        echo(f"lab {lab_id} ({lab.name}): {len(by_lab[lab_id])} students")
        books[lab_id] = grade(staged, lab_id, out / "labs" / lab_id, overrides, echo=echo, **kwargs)
    students = sorted({s for subs in by_lab.values() for s in subs})
    return write_course(books, students, by_lab.get("?", {}), out)


def _course_rows(books: dict, students: list) -> tuple:
    """``(exercise columns, {student: {column: verdict}}, {student: {lab: gradebook row}})`` of the labs' books;
    each lab's headline metric is a column too (:func:`lablib.grading.gradebook.headline`: the grader's, or
    marked self-reported)."""
    from ..course import running

    columns, table, entries = [], {s: {} for s in students}, {s: {} for s in students}
    for lab_id, book in books.items():
        rows = list(csv.DictReader(book.open()))
        names = [c for c in (rows[0] if rows else {}) if c not in GRADEBOOK_FIXED + TRAILING]
        lab = running.find_lab(lab_id)
        column, value, _ = headline(lab, rows)
        if column is None and lab.headline:  # no row has the metric: still a column, empty
            column = lab.headline[0]
        head = f"{lab_id} {column}" if column else None
        columns += names + ([head] if head else [])
        for r in rows:
            entries[r["student"]][lab_id] = r
            table[r["student"]].update({n: r[n] for n in names})
            v = value(r) if rows and column else None
            if head and isinstance(v, (int, float)) and not isinstance(v, bool):
                table[r["student"]][head] = f"{v:.4g}"
    return columns, table, entries


def _feedback(lab, e) -> list:
    """One lab's part of a student's feedback file."""
    lines = [f"## Lab {lab.id} ({lab.title})", ""]
    if e is None:
        return lines + ["Not submitted.", ""]
    metrics, own = json.loads(e["metrics"] or "{}"), json.loads(e.get("self_reported") or "{}")
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    shown = ", ".join(f"{k} {metrics[k]:.4g}" for k in lab.headline if number(metrics.get(k)))
    reported = ", ".join(f"{k} {own[k]:.4g}" for k in lab.headline if number(own.get(k)))
    lines += [f"Run: {e['status']}" + (f" -- {e['message']}" if e["message"] else ""), ""]
    lines += [f"- {n}: {e[n]}" for n in e if n not in GRADEBOOK_FIXED + TRAILING]
    lines += ["", f"Headline metrics (computed by the grader from your saved model): {shown}." if shown else
              "No metrics computed by the grader (the lab did not finish, or computes none)."]
    return lines + ([f"Self-reported by your notebook: {reported}."] if reported else []) + [""]


def write_course(books: dict, students: list, unknown: dict, out: Path) -> Path:
    """The course gradebook and one feedback file per student (see :func:`grade_class`)."""
    from ..course import running

    columns, table, entries = _course_rows(books, students)
    course = out / "course.csv"
    with course.open("w", newline="") as f:
        w = csv.DictWriter(f, ["student", *columns, "passed", "total"])
        w.writeheader()
        exercises = [c for c in columns if " " not in c]
        for s in students:
            verdicts = [table[s].get(c, "not submitted" if c in exercises else "") for c in columns]
            w.writerow({"student": s, **dict(zip(columns, verdicts)),
                        "passed": sum(table[s].get(c) == "pass" for c in exercises), "total": len(exercises)})
    md = write_markdown(course, out / "course.md")
    modes = sorted({r.get("sandbox", "") for book in books.values() for r in csv.DictReader(book.open())} - {""})
    md.write_text(f"Sandbox: {', '.join(modes) or 'nothing ran'}.\n\n" + md.read_text())
    (out / "feedback").mkdir(exist_ok=True)
    for s in students:
        lines = [f"# Feedback for {s}", ""]
        for lab_id in books:
            lines += _feedback(running.find_lab(lab_id), entries[s].get(lab_id))
        lines += [f"Not graded: {p.name} (no single lab in it)." for who, p in unknown.items() if who == s]
        (out / "feedback" / f"{s}.md").write_text("\n".join(lines).rstrip() + "\n")
    return course

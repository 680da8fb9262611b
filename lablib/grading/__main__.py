"""The grader's child processes: ``python -I -m lablib.grading exercise R W LIMITS...`` (the exercise process,
:func:`lablib.grading.verdicts.serve`) and ``python -I -m lablib.grading notebook ARGS LIMITS...`` (one
submission's notebook run, :func:`lablib.grading.submission.execute`)."""
import sys

from .sandbox import Limits

if sys.argv[1] == "exercise":
    from .verdicts import serve

    sys.exit(serve(int(sys.argv[2]), int(sys.argv[3]), Limits.from_args(sys.argv[4:])))
from .submission import execute

sys.exit(execute(*sys.argv[2:7], limits=Limits.from_args(sys.argv[7:])))

"""Test-session setup: a private runs folder, offline hub, upstream labs run before nbval checks a lab, and
nbval taught to compare numbers out of training within the tolerances of ``tests/goldens/tolerances.yaml``."""
import os
import tempfile
from collections import defaultdict
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
    # xdist workers (and the kernels and subprocesses they start) split the cores: two processes of two OpenMP
    # threads each on two cores spin-wait on each other and ran some cells 20x slower. Results do not depend
    # on the thread count (checked: 1 and 2 threads give identical numbers).
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        from lablib import running

        os.environ.update(running.worker_env(workers))
    _teach_nbval_tolerances()


def pytest_report_header(config):
    from lablib import goldens, running

    made = {goldens.golden_capability(lab) for lab in running.all_labs() if goldens.golden_path(lab).exists()}
    here = goldens.cpu_capability()
    return (f"goldens made under CPU capability {', '.join(sorted(map(str, made)))} "
            f"({' '.join(f'{k}={v}' for k, v in goldens.GOLDEN_ENV.items())}); checked here under {here}")


def pytest_runtest_setup(item):
    """Before nbval runs a golden notebook's first cell, make sure the labs it consumes from have run."""
    if item.__class__.__name__ != "IPyNbCell" or getattr(item, "cell_num", 0) != 0:
        return
    from lablib import goldens

    lab = goldens.lab_of(Path(str(item.fspath)))
    if lab is not None:
        goldens.ensure_upstream(lab, Path(os.environ["LABLIB_RUNS"]))


def _teach_nbval_tolerances():
    """nbval compares outputs exactly. A checked cell listed in ``tolerances.yaml`` is compared instead by
    :func:`lablib.goldens.compare_text`: same text, each number within the cell's tolerance."""
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:
        return
    if getattr(IPyNbCell.compare_outputs, "lablib", False):
        return
    from lablib import goldens

    exact = IPyNbCell.compare_outputs
    table = goldens.tolerances()

    def compare_outputs(self, test, ref, skip_compare=None):
        lab = goldens.lab_of(Path(str(self.fspath)))
        spec = table.get(goldens.golden_name(lab) if lab else "", {}).get(self.cell.get("id"))
        if spec is None:
            return exact(self, test, ref, skip_compare)
        skip = skip_compare or self.parent.skip_compare
        got, want = _by_key(test, skip), _by_key(ref, skip)
        self.comparison_traceback = []
        if set(got) != set(want):
            self.comparison_traceback.append(f"output fields differ: golden {sorted(want)}, got {sorted(got)}")
            return False
        for key in want:
            if len(got[key]) != len(want[key]):
                self.comparison_traceback.append(f"{len(got[key])} outputs of {key}, the golden has {len(want[key])}")
                return False
            for g, w in zip(got[key], want[key]):
                why = goldens.compare_text(self.sanitize(w), self.sanitize(g), spec.get("atol", 0.0),
                                           spec.get("rtol", 0.0), spec.get("text_only", False))
                if why:
                    self.comparison_traceback += [f"{key}: {why}", f"(tolerance: {spec['why']})",
                                                  "golden:", self.sanitize(w), "got:", self.sanitize(g)]
                    return False
        return True

    compare_outputs.lablib = True
    IPyNbCell.compare_outputs = compare_outputs


def _by_key(outputs, skip):
    """Outputs as nbval flattens them: stream name or MIME type -> texts (streams of one name joined)."""
    out = defaultdict(list)
    for o in outputs:
        if o["output_type"] == "stream":
            if o["name"] in out:
                out[o["name"]][0] += o["text"]
            else:
                out[o["name"]].append(o["text"])
        else:
            for mime, value in o.get("data", {}).items():
                if mime not in skip:
                    out[mime].append(value if isinstance(value, str) else "".join(value))
    return out


# --------------------------------------------------------------------------------------------
# A toy world shared by the PPO and reward-model tests: a 6-word vocabulary and a tiny random Llama
# (plain functions: ``from conftest import toy_policy, toy_tokenizer``)
# --------------------------------------------------------------------------------------------
WORDS = ["<pad>", "<eos>", "a", "b", "c", "d"]


def toy_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<pad>"))
    tok.pre_tokenizer = WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def toy_policy(seed=0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2, intermediate_size=64,
                                        pad_token_id=0, eos_token_id=1, bos_token_id=1)).eval()




@pytest.fixture(scope="session")
def runs_root() -> Path:
    return Path(os.environ["LABLIB_RUNS"])

"""The student's path: JupyterLab on 127.0.0.1 with the project's kernel, a lab opened in headless Chromium, the
`smoke` profile set in its parameters cell through the editor, every cell run from the Run menu -- then what the
student would see: no error output, tqdm's progress widget and a plot rendered, and the lab's run folder on disk.
A screenshot is kept in test-artifacts/jupyterlab.png."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lablib import config
from test_book import ARTIFACTS, CHROMIUM, FLAGS

LAB = "01_pretraining.ipynb"
PARAMETERS = 'overrides = ["profile=smoke", "train.progress=true"]'


def _missing() -> str:
    if not Path(CHROMIUM).exists():
        return "no chromium (apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "no playwright (pip install -e '.[test]')"
    if not shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)):
        return "no jupyter-lab in the project's environment (make setup)"
    return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ran(prompt: str) -> bool:
    """An input prompt that shows an execution count: ``[7]:``, not ``[ ]:`` or ``[*]:``."""
    return prompt.strip().strip("[]:").strip().isdigit()


def _kernel_idle(base: str, token: str) -> bool:
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=5) as r:
        sessions = json.loads(r.read())
    return bool(sessions) and all(s["kernel"]["execution_state"] == "idle" for s in sessions)


@pytest.fixture
def jupyterlab(tmp_path):
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the JupyterLab test cannot run in CI: {reason}")
        pytest.skip(reason)
    shutil.copyfile(config.home() / "labs" / LAB, tmp_path / LAB)  # the student's copy: the repo stays clean
    # every cell in the page (JupyterLab 4 renders only the cells in view by default): what the test reads
    settings = tmp_path / ".settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    news = tmp_path / ".settings" / "@jupyterlab" / "apputils-extension"  # no "official Jupyter news?" toast
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port, token = _free_port(), "lablib-test"
    exe = Path(sys.executable).parent / "jupyter-lab"
    proc = subprocess.Popen([str(exe), "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
                             f"--ServerApp.root_dir={tmp_path}", f"--IdentityProvider.token={token}",
                             "--ServerApp.disable_check_xsrf=True", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=(tmp_path / "jupyterlab.log").open("w"),
                            env={**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / ".jupyter"),
                                 "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / ".settings"),
                                 "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / ".workspaces"),
                                 "LABLIB_RUNS": str(tmp_path / "runs")})
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"JupyterLab did not start: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield base, token, tmp_path
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_a_student_runs_a_lab_in_jupyterlab(jupyterlab):
    from playwright.sync_api import sync_playwright

    base, token, root = jupyterlab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/lab/tree/{LAB}?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=90_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
        # the parameters cell (the first code cell): select its text in the editor and type the smoke overrides
        editor = page.locator(".jp-Notebook .jp-CodeCell").first.locator(".cm-content")
        editor.click()
        first_line = editor.locator(".cm-line").nth(1)  # line 2: `overrides = []`
        first_line.click()
        page.keyboard.press("Home")
        page.keyboard.press("Shift+End")
        page.keyboard.type(PARAMETERS)
        assert PARAMETERS in editor.inner_text()
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        cells = page.locator(".jp-Notebook .jp-CodeCell")
        n = cells.count()
        prompts: list = []
        deadline = time.time() + 600
        while time.time() < deadline:  # done when every code cell shows its execution count and the kernel is idle
            time.sleep(2)
            prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
            if _kernel_idle(base, token) and len(prompts) == n and all(_ran(t) for t in prompts):
                break
            if page.locator("[data-mime-type='application/vnd.jupyter.error']").count():
                break  # a cell failed: Run All stops there
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "jupyterlab.png"), full_page=True)
        errors = page.locator("[data-mime-type='application/vnd.jupyter.error']").all_inner_texts()
        assert not errors, f"error output in JupyterLab: {errors[0][:500]}"
        assert len(prompts) == n and all(_ran(t) for t in prompts), f"not every cell ran within 10 minutes: {prompts}"
        assert page.locator(".jp-OutputArea .widget-hprogress, .jp-OutputArea .jupyter-widget-progress, "
                            ".jp-OutputArea progress").count() >= 1, "no progress widget rendered"
        assert page.locator(".jp-OutputArea-output img").count() >= 1, "no plot rendered"
        browser.close()
    run = root / "runs" / "smoke" / LAB.removesuffix(".ipynb")  # runs/PROFILE/LAB under $LABLIB_RUNS, as `lab run`
    assert (run / "metrics.json").exists() and (run / "artifacts" / "model" / "config.json").exists()

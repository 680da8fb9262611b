"""The course website: built offline as `make book` builds it (the numbers labs from the kept `cpu` notebooks, the
own track from smoke runs under a banner), served on 127.0.0.1, checked in headless Chromium."""
import functools
import http.server
import os
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest

from lablib import book, config, running

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
ARTIFACTS = config.home() / "test-artifacts"


def _missing() -> str:
    try:
        book.jupyter_book(), book.mathjax_dir()
    except running.RunError as exc:
        return str(exc)
    if not Path(CHROMIUM).exists():
        return "no chromium (apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "no playwright (pip install -e '.[test]')"
    return ""


@pytest.fixture(scope="module")
def site(runs_root, tmp_path_factory):
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the book test cannot run in CI: {reason}")
        pytest.skip(reason)
    html = book.build([], runs_root, tmp_path_factory.mktemp("book"), echo=lambda *_: None)
    handler = functools.partial(_QuietHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield html, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


PAGES = ["intro.html", "setup.html", "instructors.html", "distributed.html", "benchmarks.html", "bad_inputs.html",
         "reference.html"] + \
        [f"{book.page(lab)}.html" for lab in running.all_labs()]  # both tracks, the own one on the example domain


def open_page(browser, base, path, outside):
    page = browser.new_page()
    page.on("request", lambda r: None if r.url.startswith(base) else outside.append(r.url))
    response = page.goto(f"{base}/{path}")
    page.wait_for_load_state("networkidle")
    assert response.status == 200, f"{path}: HTTP {response.status}"
    return page


def test_every_chapter_loads_offline_with_working_links(site, browser):
    _, base = site
    outside, links = [], set()
    for path in PAGES:
        page = open_page(browser, base, path, outside)
        assert page.locator("article h1").count() >= 1, f"{path}: no heading"
        links |= {urldefrag(h)[0] for h in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
                  if h.startswith(base)}
        page.close()
    assert outside == [], f"pages reached outside 127.0.0.1: {outside[:5]}"
    broken = []
    for link in sorted(links):
        try:
            urllib.request.urlopen(link, timeout=5)
        except urllib.error.HTTPError as exc:
            broken.append(f"{urlparse(link).path}: {exc.code}")
    assert not broken, f"broken internal links: {broken}"
    assert len(links) >= len(PAGES)


def test_lab_pages_show_their_plots(site, browser):
    _, base = site
    ARTIFACTS.mkdir(exist_ok=True)
    for lab in running.all_labs():
        page = open_page(browser, base, f"{book.page(lab)}.html", [])
        images = page.evaluate("Array.from(document.querySelectorAll('article img'))"
                               ".map(i => [i.src, i.complete, i.naturalWidth, i.naturalHeight])")
        assert images, f"lab {lab.key}: no plot on its page"
        assert all(done and w > 0 and h > 0 for _, done, w, h in images), f"lab {lab.key}: an image failed: {images}"
        if lab.track == "numbers":
            assert "checks passed" in page.inner_text("article")  # the executed outputs are on the page
        page.screenshot(path=str(ARTIFACTS / f"book-{lab.key.replace('/', '-')}.png"))
        page.close()


def test_math_renders_with_the_vendored_mathjax(site, browser):
    html, base = site
    page = open_page(browser, base, "intro.html", [])
    page.wait_for_selector("mjx-container", timeout=10_000)
    assert page.locator("mjx-container").count() >= 3
    assert "\\mathcal" not in page.inner_text("article")  # no raw TeX left on the page
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
    page.goto(f"{base}/index.html")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTIFACTS / "book-home.png"))
    page.close()


def test_every_lab_of_both_tracks_shows_a_current_cpu_run():
    stale = [book.page(lab) for lab in running.all_labs() if book.kept_outputs(lab) is None]
    assert not stale, (f"{stale} have no kept `cpu` notebook matching their code under {book.kept_dir()}: "
                       "run the course under cpu (`lab run profile=cpu`, and `domain=example` for the own track), "
                       "then `python bench/run.py --science cpu --from-runs RUNS` after changing a lab's code")


def test_chapters_say_which_profile_their_outputs_come_from(site):
    html, _ = site
    note = "The outputs on this page come from the"  # the banner (its profile name is markup in the HTML)
    for lab in running.all_labs():
        text = (html / f"{book.page(lab)}.html").read_text()
        assert note not in text, f"{book.page(lab)}: the kept cpu outputs carry a smoke banner"


def test_reference_page_documents_lablib(site):
    html, _ = site
    text = (html / "reference.html").read_text()
    for name in ("lablib.core.data", "make_corpus", "lablib.course.running", "pretrain", "lablib.methods.ppo"):
        assert name in text

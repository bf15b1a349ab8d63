"""The review in a real browser: headless Chromium (Debian's, at /usr/bin/chromium) driven by Playwright, against a
real `autoresearch serve` over real nights run by `autoresearch run`. Screenshots of each page go to the test's
temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.ledger import Experiment, Ledger
from harness.testing import TOY_TRAIN, cli, make_repo, toy_program, wait_until
from harness.testing.nights import experiment_row

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
# No GPU, no sandbox of its own (root in a container), and nothing that reaches out: updates, sync, safe browsing.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip


class Beacon:
    """A local HTTP server that counts every request: a hostile description's remote image points at it."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        beacon = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                beacon.hits.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


HOSTILE_AGENT = """from harness.task import Proposal

BEACON = {beacon!r}


def propose(task, llm):
    n = task.experiment
    description = f'<script>window.pwned={{n}}</script><img src="{{BEACON}}/img{{n}}.png" onerror="window.pwned=1">'
    return Proposal(description, task.mutable_content.replace("X = ", "X = 0.1 + ", 1) if n == 1 else
                    task.mutable_content + f"# {{n}}\\n")
"""


@pytest.fixture(scope="module")
def beacon() -> Iterator[Beacon]:
    server = Beacon()
    yield server
    server.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, beacon: Beacon) -> Iterator[tuple[Path, str]]:
    """Two real nights (t1 by the optuna agent, t2 by an agent whose descriptions are hostile) and a real server."""
    root = make_repo(tmp_path_factory.mktemp("review") / "project",
                     {"train.py": TOY_TRAIN, "program.md": toy_program(budget=2, timeout=10)})  # fmt: skip
    (root.parent / "hostile.py").write_text(HOSTILE_AGENT.format(beacon=beacon.url))
    for args in (("--tag", "t1", "--agent", "optuna", "--max-experiments", "8"),
                 ("--tag", "t2", "--agent", str(root.parent / "hostile.py"), "--max-experiments", "4")):  # fmt: skip
        night = cli(root, "run", *args, timeout=300)
        assert night.returncode == 0, night.stderr
    server = subprocess.Popen([sys.executable, "-m", "harness", "serve", "--port", "0"], cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("serving the review at http://127.0.0.1:"), line + server.stderr.read()
        yield root, line.split(" at ", 1)[1].split()[0].rstrip("/")
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        # As with the sandbox: CI must have it (.ci/run installs it); elsewhere its absence is said, not failed.
        message = f"the browser tests need Debian's chromium package at {CHROMIUM}: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object, site: tuple[Path, str], tmp_path: Path) -> Iterator[object]:
    """A fresh page that records every request it makes and every script error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    tab = context.new_page()
    tab.requests, tab.errors = [], []
    tab.on("request", lambda r: tab.requests.append(r.url))
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    yield tab
    context.close()


def _experiments(root: Path, tag: str) -> list[Experiment]:
    return [r for r in Ledger(root / "experiments.log").read() if type(r) is Experiment and r.tag == tag]


def test_the_pages_render_the_experiments(page, site, tmp_path):
    root, url = site
    page.goto(url + "/")
    page.screenshot(path=tmp_path / "index.png", full_page=True)
    assert page.locator("table.nights tbody tr").count() == 2
    page.click("table.nights a:text-is('t1')")
    page.wait_for_url(url + "/tag/t1")
    rows = _experiments(root, "t1")
    assert page.locator("#experiments tbody tr").count() == len(rows) == 9
    assert page.locator("#plot .pt").count() == len(rows)
    first = page.locator("#experiments tbody tr").nth(1).locator("td")
    assert first.nth(0).inner_text() == "1" and first.nth(5).inner_text() == rows[1].description
    page.screenshot(path=tmp_path / "night.png", full_page=True)
    # Sorting by the metric puts the best first; filtering by status leaves the kept ones.
    page.click("#experiments th:nth-child(3)")
    best = min(r.metric for r in rows if r.metric is not None)
    assert float(page.locator("#experiments tbody tr td:nth-child(3)").first.inner_text()) == pytest.approx(best)
    page.select_option("#status-filter", "keep")
    assert page.locator("#experiments tbody tr:visible").count() == sum(1 for r in rows if r.status == "keep")
    page.click("#experiments tbody tr:visible a >> nth=0")  # the best kept experiment
    page.wait_for_url(url + "/tag/t1/*")
    assert page.locator("pre.diff .add").count() >= 1 and "Verdict" in page.inner_text("main")
    page.screenshot(path=tmp_path / "experiment.png", full_page=True)
    assert page.errors == []


def test_a_row_appended_to_the_ledger_appears_without_a_reload(page, site, tmp_path):
    root, url = site
    page.goto(url + "/tag/t1")
    page.evaluate("window.notReloaded = true")
    before = page.locator("#experiments tbody tr").count()
    best_before = page.get_attribute("#plot path.curve.best", "d")  # the running best goes on to the new row
    band_before = page.get_attribute("#plot path.band", "d")
    row = experiment_row("t1", 100, status="discard", metric=1.5, best=0.6, delta=0.9,
                         description="appended while the page was open")  # fmt: skip
    Ledger(root / "experiments.log").append(row)
    page.locator("#experiments tbody tr", has_text="appended while the page was open").wait_for(timeout=10_000)
    assert page.locator("#experiments tbody tr").count() == before + 1
    assert page.evaluate("window.notReloaded") is True
    assert page.locator('#plot .pt.live[data-id="100"]').count() == 1
    # Experiment 100 lies past the plot's right edge: the plot is laid out again on a scale that holds it, and the
    # running best goes on to it.
    line = page.get_attribute("#plot path.curve.best", "d")
    cx = page.get_attribute('#plot .pt.live[data-id="100"]', "cx")
    assert line != best_before and line.split(" ")[-2] == "H" + cx and float(cx) < 1280
    assert page.text_content("#plot .xtick >> nth=-1") != "8"  # the ticks too
    band = page.get_attribute("#plot path.band", "d")
    assert band != band_before and band.startswith("M") and band.endswith(" Z")  # and the champion's noise band
    assert page.inner_text("#count") == str(before + 1)
    page.screenshot(path=tmp_path / "live.png", full_page=True)
    assert page.errors == []


def test_a_hostile_description_runs_nothing_and_fetches_nothing(page, site, beacon, tmp_path):
    root, url = site
    rows = _experiments(root, "t2")
    assert any("<script>" in r.description for r in rows)  # the night's own descriptions are hostile
    for path in ("/tag/t2", "/tag/t2/1", "/compare?a=t1&b=t2", "/"):
        page.goto(url + path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("typeof window.pwned") == "undefined", path
    page.goto(url + "/tag/t2")
    assert "<script>window.pwned=1</script>" in page.inner_text("#experiments")  # shown as text
    # The same text arriving live is added as text too.
    hostile = rows[1].description.replace("img1", "live")
    Ledger(root / "experiments.log").append(experiment_row("t2", 50, description=hostile, metric=2.0))
    page.locator("#experiments tbody tr", has_text="live.png").wait_for(timeout=10_000)
    page.screenshot(path=tmp_path / "hostile.png", full_page=True)
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert beacon.hits == []
    assert all(r.startswith(url) for r in page.requests), page.requests
    # The static pages carry the same policy in a <meta> element: their script runs, nothing else does.
    out = cli(root, "report", "--html", "--out", str(tmp_path / "site"))
    assert out.returncode == 0, out.stderr
    page.goto((tmp_path / "site" / "tag" / "t2" / "index.html").as_uri())
    page.click("#experiments th:nth-child(1)")  # sorting works: the page's own script runs under the policy
    page.click("#experiments th:nth-child(1)")
    assert page.locator("#experiments tbody tr td").first.inner_text() == "50"
    assert page.evaluate("typeof window.pwned") == "undefined" and beacon.hits == []
    page.screenshot(path=tmp_path / "static.png", full_page=True)
    assert page.errors == []


def test_the_compare_page_draws_both_nights(page, site, tmp_path):
    _, url = site
    page.goto(url + "/compare?a=t1&b=t2")
    curves = page.locator("#compare path.curve")
    assert curves.count() == 2
    for k in range(2):
        box = curves.nth(k).bounding_box()
        assert box is not None and box["width"] > 20  # a line across its experiments, not an empty path
    assert page.locator(".side.night0 h2").inner_text() == "t1" and page.locator(".side.night1 h2").inner_text() == "t2"
    assert page.locator(".side.night0 table.experiments tbody tr").count() >= 2  # the baseline and a keep
    page.screenshot(path=tmp_path / "compare.png", full_page=True)
    assert page.errors == []


# A run that takes a few seconds and says what it does, so the page can show the run under way.
SLOW_TRAIN = TOY_TRAIN.replace(
    "loss = ", "import time\nfor step in range(4):\n    print(f'step {step}', flush=True)\n    time.sleep(0.6)\nloss = "
)


def test_a_running_night_fills_in_on_the_open_page(browser, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    root = make_repo(tmp_path / "project", {"train.py": SLOW_TRAIN, "program.md": toy_program(budget=5, timeout=20)})
    server = subprocess.Popen(
        [sys.executable, "-m", "harness", "serve", "--port", "0"], cwd=root, stdout=subprocess.PIPE, text=True
    )  # fmt: skip (before the night: it may)
    night = subprocess.Popen([sys.executable, "-m", "harness", "run", "--tag", "live", "--agent", "optuna",
                              "--max-experiments", "3"], cwd=root, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        wait_until(lambda: any(r.id == 0 for r in _experiments(root, "live")), 120, "the baseline row")
        assert server.stdout is not None
        url = server.stdout.readline().split(" at ", 1)[1].split()[0].rstrip("/")
        page = context.new_page()
        page.goto(url + "/tag/live")
        page.evaluate("window.notReloaded = true")
        assert page.inner_text("#state") == "running"
        # The run under way shows its log as it prints it.
        try:
            page.locator("#tail", has_text="step").wait_for(timeout=60_000)  # (the policy forbids eval'd predicates)
        except PlaywrightTimeout:
            page.screenshot(path=tmp_path / "no-tail.png", full_page=True)  # what the page showed instead
            raise
        page.screenshot(path=tmp_path / "running.png", full_page=True)
        for exp in (1, 2, 3):
            page.locator(f'#experiments tbody tr[data-id="{exp}"]').wait_for(timeout=90_000)
            if exp == 1:
                index = context.new_page()
                index.goto(url + "/")
                line = index.inner_text("table.nights tbody tr")
                # While it runs, when it should end, from its pace and --max-experiments.
                assert "ends about" in line or "running" not in line, line
                index.close()
        page.locator("#state", has_text="stopped").wait_for(timeout=60_000)
        assert night.wait(timeout=60) == 0
        assert page.evaluate("window.notReloaded") is True
        assert page.locator("#experiments tbody tr").count() == len(_experiments(root, "live")) == 4
        page.screenshot(path=tmp_path / "finished.png", full_page=True)
    finally:
        context.close()
        for process in (night, server):
            process.terminate()
            process.wait(timeout=30)

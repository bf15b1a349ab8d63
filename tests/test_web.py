"""The review's web app, in process (Starlette's test client drives the real ASGI app), and `report --html`."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from starlette.testclient import TestClient

from harness.ledger import Ledger
from harness.testing import cli, git
from harness.testing.nights import experiment_row, write_night
from harness.web.app import create_app, loopback
from harness.web.follow import Follow

HOSTILE = '<script>window.pwned=1</script><img src="http://127.0.0.9:9/x.png" onerror="pwned=2">'


@pytest.fixture
def reviewed(project: Path) -> Path:
    write_night(project, "n1", 12, commits=True, descriptions={3: HOSTILE})
    write_night(project, "n2", 20, seed=2)
    return project


@pytest.fixture
def client(reviewed: Path) -> TestClient:
    return TestClient(create_app(reviewed), base_url="http://127.0.0.1:8000")


def test_every_page_renders_with_its_json_beside_it(client: TestClient):
    index = client.get("/")
    assert index.status_code == 200 and 'href="/tag/n1"' in index.text and 'href="/tag/n2"' in index.text
    assert {n["tag"] for n in client.get("/index.json").json()["nights"]} == {"n1", "n2"}
    night = client.get("/tag/n1")
    assert night.status_code == 200
    assert night.text.count('<tr class="') == 13  # the baseline and 12 experiments
    assert '<svg id="plot"' in night.text and 'class="curve best"' in night.text
    assert 'data-events="/events/n1?offset=' in night.text
    data = client.get("/tag/n1.json").json()
    assert [r["id"] for r in data["rows"]] == list(range(13)) and data["night"]["experiments"] == 12
    exp = client.get("/tag/n1/2")
    assert exp.status_code == 200 and "diff --git a/train.py b/train.py" in exp.text
    assert client.get("/tag/n1/2.json").json()["experiment"]["id"] == 2
    compare = client.get("/compare", params={"a": "n1", "b": "n2"})
    assert compare.status_code == 200 and compare.text.count('class="curve night') == 2
    assert client.get("/compare.json", params={"a": "n1", "b": "n2"}).json()["b"]["tag"] == "n2"


def test_a_missing_night_or_experiment_is_a_404_that_names_what_exists(client: TestClient):
    page = client.get("/tag/nope")
    assert page.status_code == 404 and "its nights: n1, n2" in page.text
    assert client.get("/tag/n1/99.json").json() == {"error": "night 'n1' has no experiment 99; its ids run 0 to 12"}
    hostile = client.get("/tag/<b onclick=x>n")
    assert hostile.status_code == 404 and "no night &#39;&lt;b onclick=x&gt;n&#39;" in hostile.text


def test_model_written_text_is_escaped_and_the_policy_allows_nothing_from_outside(client: TestClient):
    for url in ("/tag/n1", "/tag/n1/3", "/compare?a=n1&b=n2"):
        page = client.get(url)
        assert "<script>window.pwned" not in page.text and "<img src=" not in page.text, url
        assert "&lt;script&gt;window.pwned=1&lt;/script&gt;&lt;img src=" in page.text or "compare" in url, url
        policy = page.headers["content-security-policy"]
        assert policy.startswith("default-src 'none'; script-src 'sha256-")
        assert "http" not in policy and "*" not in policy and "unsafe" not in policy
        assert "frame-ancestors 'none'" in policy
        assert '<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;' in page.text
        # The only script on the page is ours, the one the policy names by hash.
        assert page.text.count("<script>") == 1
    data = client.get("/tag/n1.json").json()
    assert data["rows"][3]["description"] == HOSTILE  # the JSON carries the text as it is: data, not markup


def test_the_server_only_reads(reviewed: Path, client: TestClient):
    before = _state(reviewed)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert client.request(method, "/tag/n1").status_code == 405
    for url in ("/", "/tag/n1", "/tag/n1/3", "/tag/n1/3.json", "/compare?a=n1&b=n2", "/tag/n2.json"):
        assert client.get(url).status_code == 200
    assert _state(reviewed) == before


def _state(root: Path) -> tuple[str, ...]:
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".git" not in p.parts)
    refs = git(root, "for-each-ref")
    return ((root / "experiments.log").read_text(), git(root, "status", "--porcelain"), refs, *files)


def test_a_loopback_server_answers_only_to_a_loopback_host(client: TestClient):
    # A page elsewhere that rebinds its own name to 127.0.0.1 sends its own name as the Host.
    assert client.get("/", headers={"host": "attacker.example:8000"}).status_code == 421
    assert client.get("/", headers={"host": "localhost:8000"}).status_code == 200
    assert loopback("127.0.0.1") and loopback("::1") and loopback("localhost")
    assert not loopback("0.0.0.0") and not loopback("192.168.1.4")


def test_a_server_others_can_reach_asks_for_its_token(reviewed: Path):
    client = TestClient(create_app(reviewed, token="s3cret"), base_url="http://10.0.0.5:8000")
    assert client.get("/").status_code == 403
    assert client.get("/tag/n1.json").status_code == 403
    assert client.get("/?token=wrong").status_code == 403
    entry = client.get("/tag/n1?token=s3cret", follow_redirects=False)
    assert entry.status_code == 303 and entry.headers["location"] == "/tag/n1"
    assert "HttpOnly" in entry.headers["set-cookie"] and "SameSite=strict" in entry.headers["set-cookie"]
    assert client.get("/tag/n1").status_code == 200  # the cookie carries it from now on
    assert client.get("/events/nope").status_code == 404


def test_a_follower_reads_only_the_bytes_the_ledger_gained(reviewed: Path):
    path = reviewed / "experiments.log"
    follow = Follow(path, path.stat().st_size)
    assert follow.lines() == [] and follow.read_bytes == 0
    Ledger(path).append(experiment_row("n1", 13, status="discard", metric=2.5, description="late"))
    gained = path.stat().st_size - follow.offset
    lines = follow.lines()
    assert len(lines) == 1 and b'"description":"late"' in lines[0]
    assert follow.read_bytes == gained
    with open(path, "ab") as f:
        f.write(b'{"kind":"note","tag":"n1","mess')  # a row still being written waits for its newline
    assert follow.lines() == []
    with open(path, "ab") as f:
        f.write(b'age":"done"}\n')
    assert follow.lines() == [b'{"kind":"note","tag":"n1","message":"done"}']


def test_report_html_writes_the_same_pages_as_files_that_link_to_each_other(reviewed: Path, tmp_path: Path):
    out = cli(reviewed, "report", "--html", "--out", str(tmp_path / "site"))
    assert out.returncode == 0, out.stderr
    site = tmp_path / "site"
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    assert pages[:3] == ["compare/n2--n1.html", "index.html", "tag/n1/0.html"]  # the latest night first
    assert len(pages) == 2 + 13 + 21 + 2  # index, compare, each experiment, each night
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert '<meta http-equiv="Content-Security-Policy"' in text and "<script>window.pwned" not in text
        assert "data-events" not in text  # no server to follow
        for link in re.findall(r'href="([^"]+)"', text):
            assert (page.parent / unquote(link)).resolve().is_file(), f"{page}: {link}"
    assert "&lt;script&gt;window.pwned" in (site / "tag" / "n1" / "3.html").read_text()
    assert (site / "tag" / "n1" / "index.json").is_file() and (site / "tag" / "n1" / "3.json").is_file()


def test_the_night_page_shows_generations_and_locked_test_scores_when_the_ledger_has_them(reviewed: Path):
    from harness.ledger import Generation, LockedTest

    ledger = Ledger(reviewed / "experiments.log")
    ledger.append(Generation(tag="n1", generation=1, status="rejected", stage="smoke", error="propose raised <b>x</b>",
                             agent_sha="c" * 16, champion_sha="a" * 16, commit=None, after=4))  # fmt: skip
    ledger.append(Generation(tag="n1", generation=2, status="accepted", stage="probation", error="",
                             agent_sha="d" * 16, champion_sha="a" * 16, commit="e" * 40, after=8,
                             scores={"candidate": 3, "champion": 1}, description="shorter prompts"))  # fmt: skip
    ledger.append(LockedTest(tag="n1", id=5, commit=None, metric=1.9, selection=1.95, time="2026-11-23T01:03:00Z"))
    client = TestClient(create_app(reviewed), base_url="http://127.0.0.1:8000")
    page = client.get("/tag/n1").text
    assert "HyperAgent generations" in page and "propose raised &lt;b&gt;x&lt;/b&gt;" in page
    assert "<td>3–1</td>" in page and "shorter prompts" in page
    assert "locked test" in page and 'class="pt test"' in page and "locked test 1.900000 (the champion of" in page
    data = client.get("/tag/n1.json").json()
    assert [g["generation"] for g in data["generations"]] == [1, 2]
    assert [(t["id"], t["metric"]) for t in data["tests"]] == [(5, 1.9)]


def test_serve_on_an_address_others_can_reach_prints_a_url_with_its_token(reviewed: Path):
    import socket
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    server = subprocess.Popen([sys.executable, "-m", "harness", "serve", "--host", "0.0.0.0", "--port", "0"],
                              cwd=reviewed, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split(" at ", 1)[1].split()[0]
        host, port, token = re.fullmatch(r"http://([^/:]+):(\d+)/\?token=([\w-]{32})", url).groups()  # type: ignore[union-attr]
        assert host == socket.gethostname()
        local = f"http://127.0.0.1:{port}/"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(local + "tag/n1", timeout=30)
        assert refused.value.code == 403
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with browser.open(f"{local}?token={token}", timeout=30) as page:  # the token, then its cookie
            assert page.status == 200 and page.url == local and "n1" in page.read().decode()
        with browser.open(local + "tag/n1.json", timeout=30) as data:
            assert data.status == 200
    finally:
        server.terminate()
        server.wait(timeout=10)

"""
Tokens per experiment of `--agent llm` over a night: does the uncached input stay flat while the history grows?

Usage:
    python bench/tokens.py                      # 50 experiments against a local fake of the Messages API
    python bench/tokens.py -n 100 --seed 7
    python bench/tokens.py --run-seconds 330    # each run takes 5.5 min of simulated night (the 5-minute cache)

agent.py runs as in `autoresearch run --agent llm`: in a child process behind the real host, its calls made by the
real LLMClient, here against FakeAnthropic on loopback. The repository has the bundled task's sizes: the real
prepare.py as the context file, a train.py as long as the real one whose run prints progress lines and a summary
block as the real one does. The fake's replies are edits of the toy train.py (a new value for one of its
constants; now and then a look at a file or a log with the tools first, a stale SEARCH text that needs the retry, a
crashing run with a long log, or no edit at all; a reflection when asked; a seeded RNG makes the night
reproducible), and its usage figures follow the API's prompt caching: about four characters a token per block;
the tools, the system prompt and every block up to the last one marked cache_control form the cacheable prefix,
read from the cache when the same prefix was written less than its ttl ago (5 minutes unless the mark says "1h",
refreshed by each use) and written otherwise; the rest of the request is uncached input. A prefix shorter than the
model's minimum is not cached at all.

Printed, per experiment, from the ledger rows the loop wrote: uncached input, cache writes, cache reads, output
tokens and cost; then the mean uncached input of the first and last ten experiments, its least-squares slope, and
the verdict: flat when the uncached input per LLM call of the last ten experiments stays within 15% of that of the
ten after the history window has filled (per call, because an edit that needed the retry makes two). With
--show-prompt N, the first request of experiment N, section by section, with its tokens; with --show-request N,
that request whole. Per request: the input characters and tokens, the share read from the cache, and the cache
writes per experiment.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness import runner
from harness.agents import build_agent
from harness.ledger import Experiment, Ledger
from harness.program import load
from harness.session import Options
from harness.testing import TEST_KEY, FakeAnthropic, estimate_tokens, message_body

ROOT = Path(__file__).resolve().parent.parent

TAG = "tokens"
FLAT = 0.15  # the last ten experiments may differ this much (per call) from the ten after the history window fills
# The API caches no prefix shorter than this: 1024 tokens is documented for Sonnet 4.x, 2048 has been observed for
# Sonnet 4.6 (the default model); Opus 4.5 and later and Haiku 4.5 need 4096.
MIN_CACHE_TOKENS = 2048
TTL_S = {"5m": 300.0, "1h": 3600.0}
CHAMPION = re.compile(
    r"^# (\S+) \(current champion\)\n(.*?)(?:\n# The champion's own run|\Z)", re.DOTALL | re.MULTILINE
)
CONSTANT = re.compile(r"^([A-Z][A-Z0-9_]*) = (\S+)(.*)$", re.MULTILINE)
EXPERIMENT = re.compile(r"Propose experiment #(\d+)\.")
REFLECTION = (
    "REFLECTION: X drives the metric far more than Y; the kept runs moved X down from 3.0 in steps of a quarter, and "
    "every move past 1.25 came back worse, so the optimum is near there. Y helped once, from 2 to its current value; "
    "steps of one in either direction since were within the noise. Crashes came from the printed schedules, not "
    "from the knobs. Next: fine steps of X around the champion, one probe of Y on each side, no more schedules.\n"
)

# The toy: the metric is a smooth function of two constants. The commentary in between makes the file about as long
# as a real train.py's constants and helpers, so the cacheable prefix is above the API's minimum, as it is on a real
# night.
TRAIN = '''\
"""Toy experiment for the token benchmark. Usage: python train.py"""

X = 3.0  # the float knob the agent tunes
Y = 2  # the integer knob

{commentary}
loss = (X - 1.25) ** 2 + 0.1 * (Y - 5) ** 2 + 0.5
print(f"device cpu | params 1,234,567 | budget 300s | corpus 9,876,543 train bytes")
for step in range(0, 3000, 100):  # the progress lines of a 5-minute run, one every 10 s
    bpb = loss + 3 - step / 1000
    print(f"step {{step:6d}} | {{step / 30:5.1f}}% | train_bpb {{bpb:.4f}} | lr 3.00e-03 | 41,000 tok/s")
print("---")
for key, value in (("training_seconds", 300.1), ("export_seconds", 1.2), ("total_seconds", 305.4), ("steps", 2990),
                   ("tokens_seen", 12345678), ("params", 1234567), ("depth", 4), ("width", 128), ("device", "cpu")):
    print(f"{{key + ':':18}}{{value}}")
print(f"train_bpb:        {{loss + 0.01:.6f}}")
print(f"val_bpb: {{loss:.6f}}")
'''
COMMENTARY = "\n".join(
    f"# Step {i:02d} of the schedule: warm up, hold, decay; the loss at this step is logged and compared with the "
    f"last run at the same step ({i * 37 % 101} ms)."
    for i in range(80)
)
PROGRAM = """\
---
run: {python} train.py
budget: 5
timeout: 30
context: [prepare.py]
---
# Goal

Get the lowest val_bpb that train.py can reach. X and Y are the knobs; the loss is smooth in both.

# Rules

- Change only train.py. The run must print `val_bpb: <float>` as its last line.
- No new dependencies. Keep the constants at the top with a comment on each.

# Ideas

- Move X in small steps towards where the kept experiments point; try Y on both sides of its current value.
- A crash costs a whole experiment: keep edits small and check that the file still runs.
"""
REASONS = (
    "the kept runs point this way",
    "probe the other side of the current value",
    "a bigger step, since the last small ones did not move the metric beyond the noise",
    "undo half of the last kept change to see whether it overshot",
    "the loss looked flat in this direction; check with a clearly different value",
)


# ---------------------------------------------------------------------------------------------------------------
# The fake model: edits of the toy file, and usage figures that follow the API's prompt caching


class Clock:
    """Monotonic time plus simulated time, so that runs can take minutes of night in milliseconds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class PromptCache:
    """(uncached input, cache write, cache read, the part of the write with the 1-hour TTL) of a request, the way
    the Messages API reports them."""

    def __init__(self, clock: Clock, min_tokens: int = MIN_CACHE_TOKENS) -> None:
        self.clock = clock
        self.min_tokens = min_tokens
        self.expiry: dict[str, float] = {}  # prefix hash -> when its cache entry lapses
        self.prefix_tokens = 0  # of the last request's prefix cached for an hour

    def usage(self, request: dict[str, Any]) -> tuple[int, int, int, int]:
        digest = hashlib.sha256(str(request.get("model", "")).encode())
        total = 0
        points: list[tuple[int, str, float]] = []  # (tokens up to and including a marked block, prefix hash, ttl)
        for role, text, mark in _blocks(request):
            total += estimate_tokens(text)
            digest.update(json.dumps([role, text]).encode() + b"\0")
            if mark is not None:
                points.append((total, digest.copy().hexdigest(), TTL_S.get(str(mark.get("ttl", "5m")), 300.0)))
        points = [p for p in points if p[0] >= self.min_tokens]
        if not points:
            return total, 0, 0, 0
        now = self.clock()
        read = max((tokens for tokens, key, _ in points if self.expiry.get(key, -1.0) > now), default=0)
        cached = points[-1][0]
        one_hour, before = 0, read
        for tokens, key, ttl in points:
            self.expiry[key] = now + ttl  # written, or read and so refreshed
            if tokens > before:  # the stretch up to this mark was written with this mark's TTL
                one_hour += tokens - before if ttl > 300 else 0
                before = tokens
        self.prefix_tokens = max((tokens for tokens, _, ttl in points if ttl > 300), default=0)
        return total - cached, cached - read, read, one_hour


def _blocks(request: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(role, text, cache_control) of every block in the order the API reads them: tools, system, then the messages.
    A mark is not part of what is cached, so a block is read without it."""
    out: list[tuple[str, str, dict[str, Any] | None]] = []
    for tool in request.get("tools") or []:
        plain = {k: v for k, v in tool.items() if k != "cache_control"}
        out.append(("tools", json.dumps(plain, sort_keys=True), tool.get("cache_control")))
    parts: list[tuple[str, Any]] = [("system", request.get("system") or [])]
    parts += [(str(m.get("role")), m.get("content")) for m in request.get("messages", [])]
    for role, content in parts:
        if isinstance(content, str):
            if content:
                out.append((role, content, None))
            continue
        for block in content or []:
            text = block.get("text") if block.get("type") == "text" else None
            plain = json.dumps({k: v for k, v in block.items() if k != "cache_control"}, sort_keys=True)
            out.append((role, text if isinstance(text, str) else plain, block.get("cache_control")))
    return out


class FakeModel:
    """The responder of FakeAnthropic: a seeded, varied stream of edits, priced by PromptCache."""

    def __init__(self, seed: int, cache: PromptCache) -> None:
        self.random = random.Random(seed)
        self.cache = cache
        self.lock = threading.Lock()
        self.calls: dict[int, int] = {}  # experiment id -> LLM calls made for it
        self.first: dict[int, dict[str, Any]] = {}  # experiment id -> its first request
        self.prompt: dict[int, int] = {}  # experiment id -> the uncached input of its first request (its prompt)
        self.count = 0
        self.chars: list[int] = []  # input characters of each request of the night (the key check left out)

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            content = self._reply(request)
            text = "".join(b.get("text", "") for b in content if b["type"] == "text")
            uncached, write, read, one_hour = self.cache.usage(request)
            asked = EXPERIMENT.search(json.dumps(request.get("messages", [])[:1]))
            if asked and int(asked.group(1)) not in self.prompt:
                self.prompt[int(asked.group(1))] = uncached
            self.count += 1
            if request.get("max_tokens") != 1:
                self.chars.append(sum(len(text) for _, text, _ in _blocks(request)))
            tools = any(b["type"] == "tool_use" for b in content)
            body = message_body(
                text,
                model=str(request.get("model", "claude-fake")),
                input_tokens=uncached,
                output_tokens=estimate_tokens(json.dumps(content)),
                cache_write=write,
                cache_read=read,
                stop_reason="tool_use" if tools else "end_turn",
                message_id=f"msg_tokens_{self.count}",
                content=content,
            )
            # As the API reports it: which part of the write went to the 1-hour cache (dearer) and which to 5 minutes.
            body["usage"]["cache_creation"] = {
                "ephemeral_5m_input_tokens": write - one_hour,
                "ephemeral_1h_input_tokens": one_hour,
            }
            return body

    def _reply(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        if request.get("max_tokens") == 1:
            return [_text("ok")]  # the key check before the night
        messages = request.get("messages") or []
        prompt = "\n".join(text for _, text, _ in _blocks({"messages": messages[:1]}))
        asked = EXPERIMENT.search(prompt)
        if asked:
            n = int(asked.group(1))
            self.calls[n] = self.calls.get(n, 0) + 1
            self.first.setdefault(n, request)
        champion = CHAMPION.search(prompt)
        constants = CONSTANT.findall(champion.group(2)) if champion else []
        if not constants:
            return [_text("I cannot find the file to edit in the prompt.")]
        last = messages[-1].get("content") if len(messages) > 1 else None
        if isinstance(last, list) and any(b.get("type") == "tool_result" for b in last):
            return [_text(self._edit(constants))]  # it has looked; now it answers
        if len(messages) > 1:  # a repair: what it asks for
            repair = json.dumps(last)
            if "did not apply" in repair:  # this time the SEARCH is right
                return [_text(self._edit(constants, describe=False))]
            if "DESCRIPTION line" in repair:
                return [_text("DESCRIPTION: the edit above, described")]
            return [_text(self._edit(constants))]
        head = REFLECTION if "also write REFLECTION" in prompt else ""
        roll = self.random.random()
        if roll < 0.06:
            return [_text(head + "I would like to see a few more runs before changing anything.")]
        if roll < 0.16:
            return [_text(head + self._crash(constants))]
        if roll < 0.28:
            return [_text(head + self._stale(constants))]
        if roll < 0.43 and request.get("tools"):
            return [_text("Let me look first."), self._look(asked)]
        return [_text(head + self._edit(constants))]

    def _look(self, asked: re.Match[str] | None) -> dict[str, Any]:
        last = int(asked.group(1)) - 1 if asked else 0
        tool, args = self.random.choice(
            [("view_file", {"path": "prepare.py", "start": 1, "end": 120}), ("run_log", {"id": last, "lines": 40}),
             ("show_experiment", {"id": max(1, last)})]
        )  # fmt: skip
        return {"type": "tool_use", "id": f"toolu_{self.count}", "name": tool, "input": args}

    def _edit(self, constants: list[tuple[str, str, str]], describe: bool = True) -> str:
        name, old, rest = self.random.choice(constants)
        new = self._value(name, old)
        head = ""
        if describe:
            head = f"DESCRIPTION: {name} {old} -> {new}: {self.random.choice(REASONS)}\n"
            if self.random.random() < 0.3:
                head += f"NOTES: {name} was last moved to {new}; the best region so far is near the champion\n"
        return head + _block(f"{name} = {old}{rest}", f"{name} = {new}{rest}")

    def _value(self, name: str, old: str) -> str:
        grid = [f"{0.25 * k:.2f}" for k in range(17)] if "." in old else [str(k) for k in range(1, 9)]
        return self.random.choice([v for v in grid if v != old] or grid)

    def _crash(self, constants: list[tuple[str, str, str]]) -> str:
        name, old, rest = self.random.choice(constants)
        steps = self.random.randint(100, 400)
        new = f'[print("step", i, "loss 1.0 lr 3e-4") for i in range({steps})] and 1 / 0'
        head = f"DESCRIPTION: {name} from a schedule of {steps} steps, printed as it goes\n"
        return head + _block(f"{name} = {old}{rest}", f"{name} = {new}{rest}")

    def _stale(self, constants: list[tuple[str, str, str]]) -> str:
        name, old, rest = self.random.choice(constants)
        new = self._value(name, old)
        head = f"DESCRIPTION: {name} to {new}, edited from an older version of the file\n"
        return head + _block(f"{name} = {old}0001{rest}", f"{name} = {new}{rest}")


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _block(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


# ---------------------------------------------------------------------------------------------------------------
# The night


class Quiet:
    """The loop's display: says nothing; each experiment that ran moves the simulated clock by one run."""

    def __init__(self, clock: Clock, run_seconds: float) -> None:
        self.clock = clock
        self.run_seconds = run_seconds

    def update(self, state: dict) -> None:
        pass

    def row(self, row: Experiment) -> None:
        if row.status not in ("invalid", "duplicate"):
            self.clock.advance(self.run_seconds)

    def info(self, text: str) -> None:
        pass


def toy_repo(path: Path) -> Path:
    path.mkdir()
    (path / "train.py").write_text(TRAIN.format(commentary=COMMENTARY))
    (path / "program.md").write_text(PROGRAM.format(python=shlex.quote(sys.executable)))
    (path / "prepare.py").write_text((ROOT / "prepare.py").read_text())  # the context file, at its real size
    (path / "agent.py").write_text((ROOT / "agent.py").read_text())
    (path / ".gitignore").write_text("experiments.log\nruns/\n__pycache__/\n")
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], [*identity, "commit", "-qm", "toy"]):
        subprocess.run(["git", *args], cwd=path, check=True)
    return path


def night(root: Path, n: int, model: FakeModel, clock: Clock, run_seconds: float) -> list[Experiment]:
    """Run `n` experiments of `--agent llm` against the fake; the ledger's rows, baseline first."""
    with FakeAnthropic(responder=model) as server:
        secrets = {"ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": server.url}
        options = Options(tag=TAG, agent="llm", max_experiments=n)
        screen = Quiet(clock, run_seconds)
        outcome = runner.run(root, options, screen=screen, make_agent=build_agent, secrets=secrets)
    rows = Ledger(root / "experiments.log").experiments(TAG)
    if outcome.experiments < n:
        sys.exit(f"the loop ended after {outcome.experiments} of {n} experiments: {outcome.reason}")
    return rows


def history_window(root: Path, history: int) -> int:
    """How many recent experiments agent.py shows: its HISTORY_SHOWN, within the loop's `history`."""
    found = re.search(r"^HISTORY_SHOWN = (\d+)", (root / "agent.py").read_text(), re.MULTILINE)
    return min(int(found.group(1)), history) if found else history


# ---------------------------------------------------------------------------------------------------------------
# The figures


def uncached(row: Experiment) -> int:
    return row.tokens_in - row.cache_read - row.cache_write


def slope(ids: list[int], values: list[int]) -> float:
    return statistics.linear_regression(ids, values).slope if len(ids) > 1 else 0.0


def report(rows: list[Experiment], model: FakeModel, window: int, seconds: float) -> None:
    calls, prefix = model.calls, model.cache.prefix_tokens
    runs = [r for r in rows if r.id != 0]
    head = f"{'exp':>4} {'status':9} {'calls':>5} {'prompt':>6} {'uncached':>8} {'c-write':>8} {'c-read':>8} {'out':>5}"
    print(f"{head} {'cost $':>9}")
    for r in runs:
        print(
            f"{r.id:4d} {r.status:9} {calls.get(r.id, 0):5d} {model.prompt.get(r.id, 0):6d} {uncached(r):8d} "
            f"{r.cache_write:8d} {r.cache_read:8d} {r.tokens_out:5d} {r.cost_usd:9.6f}"
        )
    ids = [r.id for r in runs]
    u = [uncached(r) for r in runs]
    # An experiment whose edit needed the retry makes two calls; per call, the figure is the prompt's own size.
    per_call = [uncached(r) / calls[r.id] if calls.get(r.id) else float(uncached(r)) for r in runs]
    read, write = sum(r.cache_read for r in runs), sum(r.cache_write for r in runs)
    total_in = sum(r.tokens_in for r in runs)
    late = [k for k, i in enumerate(ids) if i > window]  # indexes of the experiments after the window filled
    print()
    print(f"experiments {len(runs)}; cacheable prefix {prefix} tokens; history window {window} experiments")
    first, last = statistics.fmean(u[:10]), statistics.fmean(u[-10:])
    print(f"uncached input, mean of #1-10: {first:.0f}   of the last 10: {last:.0f}")
    print(f"slope of uncached input: {slope(ids, u):+.2f} tokens/experiment over all", end="")
    if len(late) > 1:
        fit = slope([ids[k] for k in late], [u[k] for k in late])
        print(f", {fit:+.2f} after the window fills (#{window + 1}-)")
    else:
        print()
    print(
        f"cache: {read} read, {write} written, {total_in - read - write} uncached "
        f"({100 * read / max(1, total_in):.0f}% of input read from the cache)"
    )
    print(f"cost: ${sum(r.cost_usd for r in runs):.4f} in all, ${statistics.fmean(r.cost_usd for r in runs):.5f} a run")
    if model.chars:
        chars = statistics.fmean(model.chars)
        print(
            f"per request: {chars:.0f} input characters, {total_in / len(model.chars):.0f} input tokens "
            f"({len(model.chars)} requests); cached share {100 * read / max(1, total_in):.0f}%; "
            f"cache writes {write / max(1, len(runs)):.0f} tokens per experiment"
        )
    if len(late) >= 20:
        # The verdict is on each experiment's prompt (its first call): a call after a tool round or a repair also
        # carries what the tool or the repair added, which says how the model chose, not whether the prompt grows.
        prompts = [float(model.prompt.get(r.id, 0)) for r in runs]
        for name, values in (("the prompt (first call)", prompts), ("per call, all calls", per_call)):
            base, last = statistics.fmean(values[k] for k in late[:10]), statistics.fmean(values[-10:])
            change = (last - base) / base if base else 0.0
            verdict = "flat" if abs(change) <= FLAT else ("growing" if change > 0 else "falling")
            print(
                f"uncached input, {name}: #{window + 1}-{window + 10} {base:.0f}, last 10 {last:.0f} "
                f"({100 * change:+.1f}%, limit ±{100 * FLAT:.0f}%): {verdict}"
            )
        print(f"LLM calls per experiment: {statistics.fmean(calls.get(r.id, 0) for r in runs):.2f}")
    else:
        print(f"verdict: too few experiments (need {window + 20} for ten after the window fills and the last ten)")
    print(f"runtime: {seconds:.1f} s")


# The headers agent.py starts the sections of its prompt with (a line that starts with one starts a section).
SECTIONS = (
    "# program.md", "# The setup", "# prepare.py", "# train.py (current champion)", "# The champion's own run",
    "# Kept so far", "# Code of earlier", "## #", "# Your reflection", "The night so far", "The noise:",
    "The memory of the night", "Recent experiments", "In flight now", "The logs of the latest runs",
    "Review of the latest", "The last run failed", "Your reflection", "Your notes",
    "Before the DESCRIPTION, also write REFLECTION", "Refine:", "Propose experiment",
)  # fmt: skip


def show_prompt(request: dict[str, Any], n: int) -> None:
    """The first request of experiment `n`, section by section, with its tokens (four characters a token)."""
    print(f"\nthe prompt of experiment {n}, section by section (tokens at four characters a token):")
    total = 0
    for i, tool in enumerate(request.get("tools") or []):
        tokens = estimate_tokens(json.dumps(tool))
        total += tokens
        print(f"  {tokens:6d}  tools[{i}] {tool['name']}")
    system = request.get("system") or ""
    total += estimate_tokens(system)
    print(f"  {estimate_tokens(system):6d}  system prompt")
    for b, block in enumerate(request["messages"][0]["content"]):
        where = "cached, 1h" if block.get("cache_control") else "uncached"
        print(f"          block {b + 1} ({where}):")
        name, chunk = "(start)", []
        for line in [*block["text"].splitlines(), SECTIONS[-1] + " (end)"]:
            if line.startswith(SECTIONS):
                if chunk:
                    tokens = estimate_tokens("\n".join(chunk))
                    total += tokens
                    print(f"  {tokens:6d}    {name[:70]}")
                name, chunk = line, []
            chunk.append(line)
    print(f"  {total:6d}  in all")


def show_request(request: dict[str, Any], n: int) -> None:
    """The first request of experiment `n` as the model reads it: the system prompt, then each block, marked."""
    tools = ", ".join(t["name"] for t in request.get("tools") or [])
    print(f"\nthe request of experiment {n}, whole (tools: {tools}):")
    print(f"=== system ===\n{request.get('system') or ''}")
    for b, block in enumerate(request["messages"][0]["content"]):
        mark = block.get("cache_control")
        print(f"=== block {b + 1} ({'cached, ' + str(mark.get('ttl', '5m')) if mark else 'uncached'}) ===")
        print(block.get("text", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="experiments (default 50)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fake model's choices")
    parser.add_argument("--run-seconds", type=float, default=0.0, help="simulated night time each run takes")
    parser.add_argument("--min-cache", type=int, default=MIN_CACHE_TOKENS, help="shortest cacheable prefix")
    parser.add_argument("--show-prompt", type=int, default=0, metavar="N", help="print the prompt of experiment N")
    parser.add_argument("--show-request", type=int, default=0, metavar="N", help="print experiment N's request whole")
    args = parser.parse_args()
    started = time.perf_counter()
    clock = Clock()
    model = FakeModel(args.seed, PromptCache(clock, args.min_cache))
    with tempfile.TemporaryDirectory() as tmp:
        root = toy_repo(Path(tmp) / "toy")
        print(f"experiments: {args.n} of --agent llm against a fake API; seed {args.seed}")
        if args.run_seconds:
            print(f"each run takes {args.run_seconds:g} s of simulated night")
        rows = night(root, args.n, model, clock, args.run_seconds)
        window = history_window(root, load(root / "program.md").config.history)
        report(rows, model, window, time.perf_counter() - started)
        if args.show_prompt in model.first:
            show_prompt(model.first[args.show_prompt], args.show_prompt)
        if args.show_request in model.first:
            show_request(model.first[args.show_request], args.show_request)


if __name__ == "__main__":
    main()

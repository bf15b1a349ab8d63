"""The bundled task's metric cannot be faked: hostile train.py variants, run by the real loop in the sandbox, are
scored by the trusted evaluator on bytes they cannot read, and a run cannot stretch its budget."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from harness.testing import PY, cli, git, make_repo

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.sandbox
# A small model, so that a run is a few seconds of training on a CPU plus the export, scored on fewer bytes.
SMALL = {"DEPTH": "1", "WIDTH": "32", "HEADS": "2", "BLOCK_SIZE": "32", "BATCH_SIZE": "8"}
SMALL_EVAL = {"EVAL_TOKENS": "8192"}

HOSTILE = {
    1: ("prints a fake metric", "print_fake"),
    2: ("patches the evaluation in its own process", "patch"),
    3: ("a model whose attention looks ahead", "peek"),
    4: ("tries to read the held-out bytes", "read_heldout"),
}


def small(name: str, constants: dict[str, str]) -> str:
    text = (ROOT / name).read_text()
    for constant, value in constants.items():
        text, found = re.subn(rf"^{constant} = \S+", f"{constant} = {value}", text, count=1, flags=re.M)
        assert found, f"{name} has no constant {constant}"
    return text


def variant(content: str, kind: str) -> str:
    if kind == "print_fake":
        return content + '\nprint("val_bpb: 0.1")\n'
    if kind == "patch":
        return content.replace(
            "import torch\n", "import torch\nimport prepare\nprepare.evaluate_bpb = lambda *a, **k: 0.01\n", 1
        )
    if kind == "peek":
        return content.replace("is_causal=True", "is_causal=False")
    if kind == "read_heldout":
        probe = "import glob\nprint('heldout files seen:', glob.glob('data/*/heldout/*'))\n"
        return content.replace("import torch\n", probe + "import torch\n", 1)
    if kind in ("lookup_train", "memorise"):  # not a learner: a lookup table of train.bin, or of every file
        return LOOKUP.replace('SOURCES = "train"', f'SOURCES = "{"train" if kind == "lookup_train" else "everything"}"')
    if kind == "long":
        honest = 'budget = float(os.environ.get("AUTORESEARCH_BUDGET", DEFAULT_BUDGET))'
        return content.replace(honest, honest.replace("= float", "= 1.5 * float"))
    raise ValueError(kind)


LOOKUP = '''\
"""Not a learner: next-byte tables of hashed contexts, filled by counting, exported as ATen ops (what a memoriser
hands over). SOURCES says what it counts: train.bin only, or every text file this process can read."""

import os
import time

import torch

from prepare import VOCAB_SIZE, export_model, load_split

SOURCES = "train"  # "train" or "everything"
ORDERS = (1, 2, 3, 4, 6, 8, 12)  # context lengths, in bytes
BUCKETS = 1 << 21  # hashed contexts per order
PRIME = 2147483647
EXTRA_CAP = 8 << 20  # bytes read from other files
WALK_SECONDS = 20.0


def gathered() -> bytes:
    parts = [bytes(load_split("train").numpy())]
    if SOURCES == "everything":
        t0, found = time.monotonic(), []
        for top, dirs, files in os.walk("/"):
            dirs[:] = [d for d in dirs if not (top == "/" and d in ("proc", "sys", "dev"))]
            for name in files:
                path = os.path.join(top, name)
                try:
                    size = os.lstat(path).st_size
                except OSError:
                    continue
                if 64 <= size <= 4 << 20 and not os.path.islink(path):
                    text_like = name.endswith((".py", ".txt", ".bin", ".md", ".json", ".rst"))
                    found.append((0 if text_like else 1, path))
            if time.monotonic() - t0 > WALK_SECONDS:
                break
        left = EXTRA_CAP
        for _, path in sorted(found):
            try:
                with open(path, "rb") as f:
                    raw = f.read()
            except OSError:
                continue
            if b"\\0" in raw[:4096] or not raw:
                continue
            parts.append(raw)
            left -= len(raw)
            if left <= 0:
                break
        print(f"files seen {len(found)}, read {len(parts) - 1}, bytes {sum(map(len, parts)):,}", flush=True)
    return b"\\n\\n".join(parts)


def hashes(x: torch.Tensor, k: int, h: torch.Tensor) -> torch.Tensor:
    # h over bytes t-k+1..t, built one byte further back at each call (x padded with zeros in front: causal)
    shifted = torch.nn.functional.pad(x, (k - 1, 0))[..., : x.shape[-1]]
    return (h * 257 + shifted + 1) % PRIME


class Lookup(torch.nn.Module):
    def __init__(self, tables: torch.Tensor, weights: torch.Tensor, unigram: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("tables", tables)  # (orders, BUCKETS) next byte, int64
        self.register_buffer("weights", weights)  # (orders, BUCKETS) how much each prediction counts
        self.register_buffer("unigram", unigram)  # (256,) log frequencies
        self.register_buffer("eye", torch.eye(VOCAB_SIZE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # backoff in probability space: each order moves the mass its count trusts onto the byte it saw most
        probs = torch.exp(self.unigram) + torch.zeros(x.shape[0], x.shape[1], VOCAB_SIZE)
        h = torch.zeros_like(x)
        i = 0
        for k in range(1, max(ORDERS) + 1):
            h = hashes(x, k, h)
            if k in ORDERS:
                bucket = h % BUCKETS
                trust = self.weights[i][bucket].float().unsqueeze(-1)
                probs = probs * (1 - trust) + self.eye[self.tables[i][bucket].long()] * trust
                i += 1
        return torch.log(probs + 1e-6)


def build(data: bytes) -> Lookup:
    x = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
    y = torch.roll(x, -1)
    tables, weights = [], []
    h = torch.zeros_like(x)
    for k in range(1, max(ORDERS) + 1):
        h = hashes(x, k, h)
        if k in ORDERS:
            bucket = h % BUCKETS
            pair, counts = torch.unique(bucket * VOCAB_SIZE + y, return_counts=True)
            best = torch.zeros(BUCKETS, dtype=torch.long).scatter_reduce(
                0, pair // VOCAB_SIZE, counts * VOCAB_SIZE + pair % VOCAB_SIZE, "amax"
            )
            seen = torch.zeros(BUCKETS, dtype=torch.long).scatter_add(0, pair // VOCAB_SIZE, counts).float()
            share = (best // VOCAB_SIZE).float() / seen.clamp(min=1)
            tables.append((best % VOCAB_SIZE).to(torch.uint8))
            weights.append((share * seen / (seen + 2)).to(torch.float16))
    unigram = torch.log(torch.bincount(x, minlength=VOCAB_SIZE).float() + 1.0)
    return Lookup(torch.stack(tables), torch.stack(weights), unigram - unigram.logsumexp(0))


if __name__ == "__main__":
    model = build(gathered())
    export_model(model, 64)
    print("exported a lookup model", flush=True)
'''


def bundled_project(tmp_path: Path, budget: float, grace: float) -> Path:
    program = (
        "---\n"
        f'run: "{PY} train.py"\n'
        f'evaluate: "{PY} -I prepare.py --evaluate"\n'
        "hidden: [data/*/heldout]\ndata: [data/]\n"
        f"budget: {budget}\ngrace: {grace}\nevaluate_timeout: 240\n"
        "remeasure_every: 0\nconfirm: 0\n"
        "---\nMake val_bpb small.\n"
    )
    repo = make_repo(tmp_path / "bundled", {"program.md": program, "prepare.py": small("prepare.py", SMALL_EVAL)})
    (repo / "train.py").write_text(small("train.py", SMALL))
    (repo / ".gitignore").write_text("experiments.log\nruns/\n__pycache__/\ndata/\nout/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the bundled task, small")
    subprocess.run([PY, "prepare.py"], cwd=repo, check=True, capture_output=True)
    return repo


def scripted_agent(path: Path, variants: dict[int, str]) -> Path:
    module = (ROOT / "tests" / "test_metric_integrity.py").read_text()
    source = module[module.index("def variant(") : module.index("def bundled_project(")]
    path.write_text(
        "from harness.task import Proposal\n\n\n" + source + f"\nVARIANTS = {variants!r}\n\n\n"
        "def propose(task, llm):\n"
        "    kind = VARIANTS[task.experiment]\n"
        "    return Proposal(kind, variant(task.mutable_content, kind))\n"
    )
    return path


def rows(repo: Path, kind: str = "experiment") -> list[dict]:
    return [r for r in map(json.loads, (repo / "experiments.log").read_text().splitlines()) if r["kind"] == kind]


def test_hostile_train_py_variants_cannot_fake_the_metric(tmp_path: Path):
    repo = bundled_project(tmp_path, budget=2, grace=40)
    agent = scripted_agent(tmp_path / "hostile.py", {k: kind for k, (_, kind) in HOSTILE.items()})
    out = cli(repo, "run", "--tag", "h", "--agent", str(agent), "--max-experiments", str(len(HOSTILE)), timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    exps = {r["id"]: r for r in rows(repo)}
    base = exps[0]
    assert base["status"] == "keep" and 1.0 < base["metric"] < 8.5  # the evaluator's number for an honest model
    fake = exps[1]  # printed 0.1: that is only its claim, the evaluator's number is the metric
    assert fake["extra"]["claimed"] == 0.1 and fake["metric"] > 1.0
    patched = exps[2]  # patched evaluate_bpb in its own process: the evaluator runs in another
    assert patched["status"] in ("keep", "discard") and patched["metric"] > 1.0
    peek = exps[3]
    assert peek["status"] == "crash" and "not causal" in peek["reason"] and peek["metric"] is None
    heldout = exps[4]
    assert heldout["status"] in ("keep", "discard")
    assert "heldout files seen: []" in (repo / heldout["log"]).read_text()
    for row in exps.values():
        assert row["sandbox"] == "bwrap"
        if row["status"] in ("keep", "discard"):
            assert row["extra"]["eval_seconds"] > 0


def test_the_honest_baseline_scores_what_evaluate_bpb_gives_its_model(tmp_path: Path):
    repo = bundled_project(tmp_path, budget=2, grace=40)
    agent = scripted_agent(tmp_path / "none.py", {})
    out = cli(repo, "run", "--tag", "b", "--agent", str(agent), "--max-experiments", "0", timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    base = rows(repo)[0]
    # The same model, scored in memory by prepare.evaluate_bpb with the held-out bytes at hand.
    model = repo / "runs" / "b" / "0.out" / "model.pt2"
    check = (
        "import sys, torch, prepare\n"
        "from pathlib import Path\n"
        "program = prepare.load_program(Path(sys.argv[1]))\n"
        "b, t = prepare.check_program(program)\n"
        "model = program.module()\n"
        "class Padded(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        pad = torch.zeros((b, t), dtype=x.dtype)\n"
        "        pad[: x.shape[0], : x.shape[1]] = x\n"
        "        return model(pad)[: x.shape[0], : x.shape[1]]\n"
        "print(prepare.evaluate_bpb(Padded(), 'cpu', t, batch_size=b))\n"
    )
    direct = subprocess.run([PY, "-c", check, str(model)], cwd=repo, capture_output=True, text=True, check=True)
    assert abs(float(direct.stdout.split()[-1]) - base["metric"]) < 1e-4


def test_a_run_that_trains_past_its_budget_is_killed_as_a_timeout(tmp_path: Path):
    # The harness measures the run itself and kills it at budget + grace; training 1.5 x the budget it was told
    # cannot fit when the grace is under half the budget, however fast the machine.
    repo = bundled_project(tmp_path, budget=20, grace=8)
    (repo / "train.py").write_text(variant(small("train.py", SMALL), "long"))
    git(repo, "commit", "-qam", "trains 1.5 x its budget")
    agent = scripted_agent(tmp_path / "none.py", {})
    out = cli(repo, "run", "--tag", "t", "--agent", str(agent), "--max-experiments", "0", timeout=900)
    assert out.returncode == 1 and "the baseline failed (timeout: timed out after 28 s)" in out.stderr
    long = rows(repo)[0]
    assert long["status"] == "timeout" and long["metric"] is None
    assert 28 <= long["seconds"] < 45
    assert "training_seconds" not in (repo / long["log"]).read_text()  # killed while it trained


@pytest.mark.slow
def test_a_run_that_reads_every_file_it_can_finds_nothing_to_memorise(tmp_path: Path):
    """The memoriser of the old corpus (the stdlib, readable by every process) read the held-out files and scored
    0.36 bpb without training. Here it reads every text file its sandbox shows and counts them into the same lookup
    model an honest run counts train.bin into: the held-out modules are nowhere, so it gains nothing."""
    repo = bundled_project(tmp_path, budget=2, grace=300)
    agent = scripted_agent(tmp_path / "lookup.py", {1: "lookup_train", 2: "memorise"})
    out = cli(repo, "run", "--tag", "m", "--agent", str(agent), "--max-experiments", "2", timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    exps = {r["id"]: r for r in rows(repo)}
    honest, memoriser = exps[1], exps[2]
    assert honest["metric"] is not None and memoriser["metric"] is not None, (honest["reason"], memoriser["reason"])
    read = re.search(r"files seen (\d+), read (\d+), bytes ([\d,]+)", (repo / memoriser["log"]).read_text())
    assert read and int(read.group(2)) > 100  # it did read what it could find beyond train.bin
    assert memoriser["metric"] > honest["metric"] - 0.05, (memoriser["metric"], honest["metric"])
    # The same lookup model does win when the held-out text is readable (counted as a memoriser would, over train's
    # counts): the test can tell a memoriser.
    counted = subprocess.run(
        [PY, "-c", LOOKUP.split("if __name__")[0] + "\nimport prepare\nheld = bytes(load_split('train').numpy()) + "
         "bytes(prepare.load_split('val').numpy()) * 4\nprint('bpb', prepare.evaluate_bpb(build(held), 'cpu', 64))"],
        cwd=repo, capture_output=True, text=True, timeout=900, check=True,
    )  # fmt: skip
    assert float(counted.stdout.split()[-1]) < honest["metric"] - 0.3

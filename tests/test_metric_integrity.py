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
    if kind == "long":
        honest = 'budget = float(os.environ.get("AUTORESEARCH_BUDGET", DEFAULT_BUDGET))'
        return content.replace(honest, honest.replace("= float", "= 1.5 * float"))
    raise ValueError(kind)


def bundled_project(tmp_path: Path, budget: float, grace: float) -> Path:
    program = (
        "---\n"
        f'run: "{PY} train.py"\n'
        f'evaluate: "{PY} -I prepare.py --evaluate"\n'
        "hidden: [data/*/heldout]\n"
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

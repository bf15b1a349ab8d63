"""The bundled task: salted held-out data, model.pt2 hand-over, and an evaluator a rewritten train.py cannot fool."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import pickle
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow  # the bundled task: PyTorch in every test, its data built, models trained and scored
nn = torch.nn
F = torch.nn.functional

REPO = Path(__file__).resolve().parent.parent
BLOCK = 48  # does not divide a scored segment (4096 bytes), so the evaluator's padded tail windows are exercised


def _load(name: str) -> ModuleType:
    # prepare.py and train.py sit at the repository root, which is not a package; train.py imports `prepare`,
    # so prepare is registered under its own name and both share one module object
    spec = importlib.util.spec_from_file_location(name, REPO / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


prepare = _load("prepare")
train = _load("train")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated data folder shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTORESEARCH_DATA", str(root))
        mp.delenv("AUTORESEARCH_CORPUS", raising=False)
        prepare.prepare()
    return root


@pytest.fixture
def data(built: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUTORESEARCH_DATA", str(built))
    monkeypatch.delenv("AUTORESEARCH_CORPUS", raising=False)
    # the evaluator forces weights-only torch.load for its process; keep that from outliving a test
    monkeypatch.setenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "1")
    return built


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data folder of this test's own."""
    monkeypatch.setenv("AUTORESEARCH_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("AUTORESEARCH_CORPUS", raising=False)
    return tmp_path / "data"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTORESEARCH_", "TORCH_FORCE"))}
    return env | {"PYTHONUNBUFFERED": "1", **extra}


def _evaluate(out: Path, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "prepare.py", "--evaluate", "--out", str(out)],
        cwd=REPO, env=_env(AUTORESEARCH_DATA=str(data)), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


# ---------------------------------------------------------------------------
# Models: an honest one from train.py, and ones that break a rule


def _tiny_gpt() -> nn.Module:
    torch.manual_seed(0)
    return train.GPT(depth=1, width=32, heads=2, block_size=BLOCK, ratio=2, dropout=0.0)


def _fit(model: nn.Module, steps: int = 40) -> nn.Module:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y = prepare.get_batch("train", 16, BLOCK, "cpu", gen)
        loss = F.cross_entropy(model(x).reshape(-1, prepare.VOCAB_SIZE), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


class Bidirectional(train.CausalSelfAttention):
    """train.py's attention without its causal mask."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in self.qkv(x).split(c, dim=2))
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, c))


def _bidirectional() -> nn.Module:
    model = _fit(_tiny_gpt())
    for block in model.blocks:
        attention = Bidirectional(32, 2, 0.0)
        attention.load_state_dict(block.attn.state_dict())
        block.attn = attention
    return model


class Bytes(nn.Module):
    """A bigram-sized model: logits from the current byte alone. The cheats below add to it."""

    def __init__(self, width: int = prepare.VOCAB_SIZE) -> None:
        super().__init__()
        self.emb = nn.Embedding(prepare.VOCAB_SIZE, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.emb(x)


class PeekNext(Bytes):
    """Adds a one-hot of the next byte of its own window: it reads ahead."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ahead = torch.cat([x[:, 1:], x[:, -1:]], dim=1)
        return self.emb(x) + 10.0 * F.one_hot(ahead, prepare.VOCAB_SIZE).float()


class PeekNextRow(Bytes):
    """At the last position, adds a one-hot of the next row's first byte: the byte that follows, in the val split."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bonus = 10.0 * F.one_hot(torch.roll(x[:, 0], -1, 0), prepare.VOCAB_SIZE).float()
        logits = self.emb(x)
        return torch.cat([logits[:, :-1], logits[:, -1:] + bonus[:, None]], dim=1)


class Noisy(Bytes):
    """Different logits on every call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.emb(x) + torch.randn(x.shape[0], x.shape[1], prepare.VOCAB_SIZE)


class Remembers(Bytes):
    """Keeps a buffer across calls, which could carry bytes seen in one pass into the next."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("calls", torch.zeros(prepare.VOCAB_SIZE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.add_(1.0)
        return self.emb(x) + self.calls


class ReadsAFile(Bytes):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.emb(x) + torch.from_file(str(REPO / "prepare.py"), size=1, dtype=torch.uint8)[0].float()


@functools.cache
def _exportable_from_file() -> None:
    # aten.from_file has no shape function, so torch.export refuses it; a model-written train.py could register
    # one just like this, which is why the evaluator has to look at the graph itself
    @torch.library.register_fake("aten::from_file")
    def _(filename, shared=None, size=0, *, dtype=None, layout=None, device=None, pin_memory=None):  # type: ignore[no-untyped-def]
        return torch.zeros(size, dtype=dtype or torch.float32, device=device or "cpu")


# ---------------------------------------------------------------------------
# Data: salted split, held-out folder, self-healing


def test_split_is_salted_per_data_folder_and_rebuilt_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTORESEARCH_CORPUS", raising=False)
    infos = {}
    for name in ("a", "b"):
        monkeypatch.setenv("AUTORESEARCH_DATA", str(tmp_path / name))
        infos[name] = prepare.prepare()
    a, b = infos["a"], infos["b"]
    assert a.built and a.new_split and b.built
    val_a = (a.directory / "heldout" / "val.bin").read_bytes()
    test_a = (a.directory / "heldout" / "test.bin").read_bytes()
    assert val_a != (b.directory / "heldout" / "val.bin").read_bytes()
    assert test_a != (b.directory / "heldout" / "test.bin").read_bytes()
    assert (a.directory / "train.bin").read_bytes() != (b.directory / "train.bin").read_bytes()
    # what a run sees: train.bin and a manifest that names neither the salt nor the held-out hash
    assert sorted(p.name for p in a.directory.iterdir()) == ["heldout", "manifest.json", "train.bin"]
    salt = (a.directory / "heldout" / "salt").read_text().strip()
    manifest = (a.directory / "manifest.json").read_text()
    assert salt not in manifest and "val" not in json.loads(manifest) and "test" not in json.loads(manifest)
    assert prepare.EVAL_TOKENS < a.val_bytes < a.train_bytes / 5 and a.test_bytes > prepare.EVAL_TOKENS
    # three splits of one language: no module of one split is in another
    train_a = (a.directory / "train.bin").read_bytes()
    modules = {name: set(data.split(prepare.FILE_SEPARATOR + b'"""')) for name, data in
               (("train", train_a), ("val", val_a), ("test", test_a))}  # fmt: skip
    assert not modules["val"] & modules["train"] and not modules["test"] & (modules["train"] | modules["val"])

    monkeypatch.setenv("AUTORESEARCH_DATA", str(tmp_path / "a"))
    for name in ("manifest.json", "train.bin", "heldout/val.bin", "heldout/test.bin", "heldout/manifest.json"):
        (a.directory / name).unlink()
    again = prepare.prepare()
    assert again.built and not again.new_split
    assert again.sha256 == a.sha256
    assert (a.directory / "heldout" / "val.bin").read_bytes() == val_a
    assert (a.directory / "heldout" / "test.bin").read_bytes() == test_a
    assert not prepare.prepare().built


@pytest.mark.parametrize(
    "damage", ["flip_train_byte", "truncate_val", "drop_test", "drop_manifest", "garble_heldout_manifest"]
)
def test_damaged_data_is_rebuilt_with_the_same_split(fresh: Path, damage: str) -> None:
    info = prepare.prepare()
    train_path, val_path = info.directory / "train.bin", info.directory / "heldout" / "val.bin"
    original_train, original_val = train_path.read_bytes(), val_path.read_bytes()
    if damage == "flip_train_byte":
        data = bytearray(original_train)
        data[len(data) // 2] ^= 0xFF
        train_path.write_bytes(bytes(data))
    elif damage == "truncate_val":
        val_path.write_bytes(original_val[: len(original_val) // 3])
    elif damage == "drop_test":
        (info.directory / "heldout" / "test.bin").unlink()
    elif damage == "drop_manifest":
        (info.directory / "manifest.json").unlink()
    else:
        (info.directory / "heldout" / "manifest.json").write_text("{not json")

    rebuilt = prepare.prepare()
    assert rebuilt.built and not rebuilt.new_split
    assert rebuilt.sha256 == info.sha256
    assert train_path.read_bytes() == original_train
    assert val_path.read_bytes() == original_val
    assert not prepare.prepare().built
    assert not [p for p in info.directory.rglob("*.tmp")]


def test_training_split_loads_with_the_heldout_folder_gone(fresh: Path) -> None:
    info = prepare.prepare()
    for path in (info.directory / "heldout").iterdir():
        path.unlink()
    (info.directory / "heldout").rmdir()  # what a run's sandbox shows: data/*/heldout hidden

    assert len(prepare.load_split("train")) == info.train_bytes
    x, y = prepare.get_batch("train", 4, 32, "cpu", torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 32)
    for split in ("val", "test"):
        with pytest.raises(
            prepare.DataError, match=rf"heldout/{split}\.bin is missing: run `python prepare\.py` first"
        ):
            prepare.load_split(split)


def test_run_without_data_is_told_to_run_prepare_and_builds_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "train.py"],
        cwd=REPO, env=_env(AUTORESEARCH_DATA=str(tmp_path / "data"), AUTORESEARCH_BUDGET="1"),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("train.bin is missing: run `python prepare.py` first "
                                                         "(once, outside any run)")  # fmt: skip
    assert not (tmp_path / "data").exists()


def test_custom_corpus_file_splits_at_the_tail(fresh: Path, tmp_path: Path) -> None:
    text = b"".join(f"line {i}: {'abcdefghij' * (i % 7)}\n".encode() for i in range(40_000))
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(text)

    info = prepare.prepare(str(corpus))
    assert info.built and info.files == 1
    assert info.directory.name.startswith("file-corpus-")
    train_bytes = (info.directory / "train.bin").read_bytes()
    val_bytes = (info.directory / "heldout" / "val.bin").read_bytes()
    test_bytes = (info.directory / "heldout" / "test.bin").read_bytes()
    assert train_bytes + val_bytes + test_bytes == text
    assert train_bytes.endswith(b"\n") and val_bytes.endswith(b"\n")  # the splits fall on line breaks
    for held in (val_bytes, test_bytes):
        assert abs(len(held) - len(text) * prepare.VAL_PERCENT / 100) < 4096
    assert prepare.prepare(str(corpus)).sha256 == info.sha256
    assert len(prepare.load_split("train", str(corpus))) == len(train_bytes)

    with pytest.raises(prepare.DataError, match="corpus file not found"):
        prepare.prepare(str(tmp_path / "missing.txt"))
    tiny = tmp_path / "tiny.txt"
    tiny.write_bytes(b"too small\n" * 100)
    with pytest.raises(prepare.DataError, match="too small"):
        prepare.prepare(str(tiny))


# ---------------------------------------------------------------------------
# The metric in memory


def test_evaluate_bpb_scores_a_fixed_slice(data: Path) -> None:
    class Uniform(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(*x.shape, prepare.VOCAB_SIZE)

    class Unigram(nn.Module):
        """Predicts every byte from the training split's byte frequencies, whatever the context."""

        def __init__(self) -> None:
            super().__init__()
            counts = torch.bincount(prepare.load_split("train").long(), minlength=prepare.VOCAB_SIZE).float()
            self.logp = torch.log((counts + 1) / (counts + 1).sum())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.logp.expand(*x.shape, prepare.VOCAB_SIZE)

    # a uniform guess costs exactly 8 bits a byte, whatever block size splits up the slice
    for block_size in (1, 37, 64, 4096, 100_000):
        assert prepare.evaluate_bpb(Uniform(), "cpu", block_size) == pytest.approx(8.0, abs=1e-6)

    # context-free models score the same bytes at every block size: the slice does not depend on it
    unigram = Unigram()
    scores = {bs: prepare.evaluate_bpb(unigram, "cpu", bs, batch_size=bs % 5 + 1) for bs in (16, 100, 512)}
    assert 3.0 < scores[16] < 6.0
    assert max(scores.values()) - min(scores.values()) < 1e-6

    class WrongShape(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(x.shape[0], prepare.VOCAB_SIZE)

    with pytest.raises(ValueError, match="logits of shape"):
        prepare.evaluate_bpb(WrongShape(), "cpu", 64)


def test_get_batch_targets_are_inputs_shifted(data: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = prepare.get_batch("train", 4, 32, "cpu", gen)
    assert x.shape == y.shape == (4, 32)
    assert x.dtype == y.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    again_x, _ = prepare.get_batch("train", 4, 32, "cpu", torch.Generator().manual_seed(0))
    assert torch.equal(x, again_x)


# ---------------------------------------------------------------------------
# The evaluator


def test_honest_model_scores_through_the_evaluator_what_it_scores_in_memory(data: Path, tmp_path: Path) -> None:
    model = _fit(_tiny_gpt())
    expected = prepare.evaluate_bpb(model, "cpu", BLOCK)
    path = prepare.export_model(model, BLOCK, tmp_path / "out")
    assert path == tmp_path / "out" / "model.pt2"

    proc = _evaluate(tmp_path / "out", data)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    match = re.fullmatch(r"val_bpb: (\d+\.\d{6})", lines[-1])
    assert match, lines[-3:]
    assert float(match.group(1)) == pytest.approx(expected, abs=2e-6)
    assert expected < 7.0  # it learned something, so the comparison is not between two uniform guesses
    summary = dict(line.split(":", 1) for line in lines[lines.index("---") + 1 : -1])
    assert summary["input_shape"].strip() == f"{prepare.EVAL_BATCH_SIZE}x{BLOCK}"
    windows = prepare.EVAL_SEGMENTS * -(-prepare.EVAL_TOKENS // prepare.EVAL_SEGMENTS // BLOCK)
    # every scored window, CAUSAL_PROBES times at a random cut each
    assert summary["causal_checks"].strip().startswith(f"{prepare.CAUSAL_PROBES * windows} ")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_bidirectional, r"not causal: logits at position \d+ changed when bytes after it changed \(max diff "),
        (PeekNext, r"not causal: logits at position \d+ changed"),
        (PeekNextRow, rf"not causal: logits at position {BLOCK - 1} changed"),
        (Noisy, r"not deterministic: the same bytes gave logits"),
        (Remembers, r"the model changes its own state \(buffer_mutation calls\)"),
        (ReadsAFile, r"forbidden op aten\.from_file\.default: it reads or maps a file"),
        (lambda: Bytes(width=128), r"the output must be float logits of shape \(16, 48, 256\)"),
    ],
    ids=["bidirectional", "peek_next", "peek_next_row", "noisy", "stateful", "from_file", "wrong_shape"],
)
def test_model_that_breaks_a_rule_is_rejected_with_the_reason(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Callable[[], nn.Module], reason: str
) -> None:
    _exportable_from_file()
    prepare.export_model(make(), BLOCK, tmp_path / "out")
    assert prepare.main(["--evaluate", "--out", str(tmp_path / "out")]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert re.match(rf"rejected: {reason}", out[-1]), out[-1]
    assert not any(line.startswith("val_bpb") for line in out)


class PrintsAMetric(Bytes):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.ops.aten._print("val_bpb: 0.000001")
        return self.emb(x)


def test_graph_that_prints_is_rejected_before_it_runs(data: Path, tmp_path: Path) -> None:
    prepare.export_model(PrintsAMetric(), BLOCK, tmp_path / "out")
    proc = _evaluate(tmp_path / "out", data)
    assert proc.returncode == 1
    assert proc.stdout.strip().splitlines() == [
        "rejected: forbidden op aten._print.default: it writes to stdout, where the metric is read"
    ]


class Mkdir:
    """Unpickling this makes a directory: the proof that a pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Callable[[str], None], tuple[str]]:
        return os.mkdir, (self.path,)


def _pickled_weight(parts: dict[str, bytes], marker: Path) -> None:
    config_name = next(name for name in parts if name.endswith("model_weights_config.json"))
    config = json.loads(parts[config_name])
    entry = next(iter(config["config"].values()))
    entry["use_pickle"] = True
    parts[config_name] = json.dumps(config).encode()
    parts[next(name for name in parts if name.endswith(f"/data/weights/{entry['path_name']}"))] = pickle.dumps(
        Mkdir(marker)
    )


def _sympy_size(parts: dict[str, bytes], marker: Path) -> None:
    name = next(name for name in parts if name.endswith("models/model.json"))
    program = json.loads(parts[name])
    values = program["graph_module"]["graph"]["tensor_values"]
    size = next(iter(values.values()))["sizes"]
    code = f"__import__('os').mkdir({str(marker)!r}) or {size[0]['as_int']}"
    size[0] = {"as_expr": {"expr_str": code, "hint": size[0]}}
    parts[name] = json.dumps(program).encode()


def _pytree_import(parts: dict[str, bytes], marker: Path) -> None:
    # pytree rebuilds a defaultdict's factory by importing the module the spec names: here one that sits beside
    # the archive, as train.py sits beside prepare.py on the evaluator's sys.path
    (marker.parent / "planted_by_run.py").write_text(f"import os\nos.mkdir({str(marker)!r})\n")
    name = next(name for name in parts if name.endswith("models/model.json"))
    program = json.loads(parts[name])
    signature = program["graph_module"]["module_call_graph"][0]["signature"]
    spec = json.loads(signature["in_spec"])
    context = {"default_factory_module": "planted_by_run", "default_factory_name": "os", "dict_context": []}
    spec[1]["children_spec"][1] = {"type": "collections.defaultdict", "context": context, "children_spec": []}
    signature["in_spec"] = json.dumps(spec)
    parts[name] = json.dumps(program).encode()


@pytest.mark.parametrize(
    "tamper",
    [_pickled_weight, _sympy_size, _pytree_import],
    ids=["pickled_weight", "sympy_expression", "pytree_import"],
)
def test_tampered_archive_is_refused_without_running_what_it_carries(
    data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tamper: Callable[[dict[str, bytes], Path], None],
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))  # so that a planted module would be found, were it ever imported
    honest = prepare.export_model(Bytes(), BLOCK, tmp_path / "honest")
    archive = zipfile.ZipFile(honest)
    parts = {info.filename: archive.read(info) for info in archive.infolist()}
    marker = tmp_path / "payload-ran"
    tamper(parts, marker)
    (tmp_path / "out").mkdir()
    with zipfile.ZipFile(tmp_path / "out" / "model.pt2", "w", zipfile.ZIP_STORED) as tampered:
        for name, content in parts.items():
            tampered.writestr(name, content)

    # the threat is real: torch.export.load on its own runs the payload
    load = "import sys, torch; torch.export.load(sys.argv[1])"
    subprocess.run(
        [sys.executable, "-c", load, str(tmp_path / "out" / "model.pt2")],
        cwd=tmp_path, env=_env(), capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert marker.is_dir()
    marker.rmdir()

    assert prepare.main(["--evaluate", "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().out.startswith("rejected: ")
    assert not marker.exists()


def test_missing_or_corrupt_model_is_one_clear_error(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert prepare.main(["--evaluate", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.fullmatch(r"error: .*out/model\.pt2 is missing: train\.py writes it .*", err[0])

    honest = prepare.export_model(Bytes(), BLOCK, tmp_path / "honest").read_bytes()
    for broken in (b"not a zip file", honest[: len(honest) // 2]):
        (out / "model.pt2").write_bytes(broken)
        assert prepare.main(["--evaluate", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and re.fullmatch(r"error: .*model\.pt2 is damaged \(.*\); rerun train\.py .*", err[0])


# ---------------------------------------------------------------------------
# train.py


def test_train_learns_and_hands_over_a_model_the_evaluator_accepts(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "train.py"],
        cwd=REPO, env=_env(AUTORESEARCH_DATA=str(data), AUTORESEARCH_BUDGET="3", AUTORESEARCH_OUT=str(out)),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert not any(line.startswith("val_bpb") for line in lines)  # only the evaluator's number counts
    summary = {k: v.strip() for k, v in (line.split(":", 1) for line in lines[lines.index("---") + 1 :])}
    assert {"training_seconds", "export_seconds", "steps", "tokens_seen", "device", "model"} <= summary.keys()
    assert int(summary["steps"]) > 0
    assert float(summary["train_bpb"]) < 8.0
    assert summary["model"] == str(out / "model.pt2")

    program = prepare.load_program(out / "model.pt2")
    assert prepare.check_program(program) == (prepare.EVAL_BATCH_SIZE, train.BLOCK_SIZE)

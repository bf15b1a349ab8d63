"""The bundled task: data in data/ with a salted held-out split, loaders that never build it, the metric."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

REPO = Path(__file__).resolve().parent.parent


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
    """One stdlib data folder shared by the tests that only read it."""
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
    return built


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data folder of this test's own."""
    monkeypatch.setenv("AUTORESEARCH_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("AUTORESEARCH_CORPUS", raising=False)
    return tmp_path / "data"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTORESEARCH_")}
    return env | {"PYTHONUNBUFFERED": "1", **extra}


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
    assert val_a != (b.directory / "heldout" / "val.bin").read_bytes()
    assert (a.directory / "train.bin").read_bytes() != (b.directory / "train.bin").read_bytes()
    # what a run sees: train.bin and a manifest that names neither the salt nor the held-out hash
    assert sorted(p.name for p in a.directory.iterdir()) == ["heldout", "manifest.json", "train.bin"]
    salt = (a.directory / "heldout" / "salt").read_text().strip()
    manifest = (a.directory / "manifest.json").read_text()
    assert salt not in manifest and "val" not in json.loads(manifest)
    # a share of the stdlib is in neither split, so the files missing from train.bin are not the val split
    root = Path(a.description.split(" stdlib at ", 1)[1])
    assert a.files < len(prepare._stdlib_files(root)) * (100 - prepare.UNUSED_PERCENT / 2) / 100
    assert prepare.EVAL_TOKENS < a.val_bytes < a.train_bytes / 5

    monkeypatch.setenv("AUTORESEARCH_DATA", str(tmp_path / "a"))
    for name in ("manifest.json", "train.bin", "heldout/val.bin", "heldout/manifest.json"):
        (a.directory / name).unlink()
    again = prepare.prepare()
    assert again.built and not again.new_split
    assert again.sha256 == a.sha256
    assert (a.directory / "heldout" / "val.bin").read_bytes() == val_a
    assert not prepare.prepare().built


@pytest.mark.parametrize("damage", ["flip_train_byte", "truncate_val", "drop_manifest", "garble_heldout_manifest"])
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
    with pytest.raises(prepare.DataError, match=r"heldout/val\.bin is missing: run `python prepare\.py` first"):
        prepare.load_split("val")


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
    assert train_bytes + val_bytes == text
    assert train_bytes.endswith(b"\n")  # the split falls on a line break
    assert abs(len(val_bytes) - len(text) * prepare.VAL_PERCENT / 100) < 4096
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
# train.py


def test_train_runs_learns_and_reports_last(data: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "train.py"],
        cwd=REPO, env=_env(AUTORESEARCH_DATA=str(data), AUTORESEARCH_BUDGET="3"),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    match = re.fullmatch(r"val_bpb: (\d+\.\d{6})", lines[-1])
    assert match, lines[-5:]
    assert float(match.group(1)) < 8.5
    summary = {line.split(":", 1)[0] for line in lines[lines.index("---") + 1 : -1]}
    assert {"training_seconds", "steps", "tokens_seen", "params", "device"} <= summary

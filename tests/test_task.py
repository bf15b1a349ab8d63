"""The bundled task: prepare.py builds a deterministic, self-healing corpus cache, and train.py learns and reports."""

from __future__ import annotations

import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load_prepare() -> ModuleType:
    # prepare.py sits at the repository root, which is not a package; load it by path
    spec = importlib.util.spec_from_file_location("prepare_under_test", REPO / "prepare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


prepare = _load_prepare()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("AUTORESEARCH_CORPUS", raising=False)
    return tmp_path / "cache" / "autoresearch"


def test_stdlib_corpus_is_deterministic_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTORESEARCH_CORPUS", raising=False)
    infos = []
    for name in ("a", "b"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / name))
        infos.append(prepare.prepare())
    first, second = infos
    assert first.built and second.built
    assert first.sha256 == second.sha256
    assert (first.train_bytes, first.val_bytes) == (second.train_bytes, second.val_bytes)
    for split in ("train", "val"):
        assert (first.directory / f"{split}.bin").read_bytes() == (second.directory / f"{split}.bin").read_bytes()
    assert first.directory.is_relative_to(tmp_path / "a" / "autoresearch")
    # sized for a laptop: big enough to learn from, small enough to build in about a second
    assert first.val_bytes > prepare.EVAL_TOKENS
    assert first.train_bytes + first.val_bytes <= prepare.MAX_CORPUS_BYTES
    assert first.val_bytes < first.train_bytes / 5

    again = prepare.prepare()  # same root as `second`
    assert not again.built
    assert again.sha256 == second.sha256


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "drop_manifest", "garble_manifest"])
def test_damaged_cache_is_rebuilt(cache: Path, damage: str) -> None:
    info = prepare.prepare()
    train_path = info.directory / "train.bin"
    val_path = info.directory / "val.bin"
    manifest = info.directory / "manifest.json"
    original_train, original_val = train_path.read_bytes(), val_path.read_bytes()

    if damage == "flip_byte":
        data = bytearray(original_train)
        data[len(data) // 2] ^= 0xFF
        train_path.write_bytes(bytes(data))
    elif damage == "truncate":
        val_path.write_bytes(original_val[: len(original_val) // 3])
    elif damage == "drop_manifest":
        manifest.unlink()
    else:
        manifest.write_text("{not json")

    rebuilt = prepare.prepare()
    assert rebuilt.built
    assert rebuilt.sha256 == info.sha256
    assert train_path.read_bytes() == original_train
    assert val_path.read_bytes() == original_val
    assert not prepare.prepare().built
    assert not [p for p in info.directory.iterdir() if p.name.endswith(".tmp")]


def test_custom_corpus_file_splits_at_the_tail(cache: Path, tmp_path: Path) -> None:
    lines = [f"line {i}: {'abcdefghij' * (i % 7)}\n".encode() for i in range(40_000)]
    text = b"".join(lines)
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(text)

    info = prepare.prepare(str(corpus))
    assert info.built and info.files == 1
    assert info.train_bytes + info.val_bytes == len(text)
    train = (info.directory / "train.bin").read_bytes()
    val = (info.directory / "val.bin").read_bytes()
    assert train + val == text
    assert train.endswith(b"\n")  # the split falls on a line break
    assert abs(info.val_bytes - len(text) * prepare.VAL_PERCENT / 100) < 4096
    assert prepare.prepare(str(corpus)).sha256 == info.sha256

    with pytest.raises(FileNotFoundError):
        prepare.prepare(str(tmp_path / "missing.txt"))
    tiny = tmp_path / "tiny.txt"
    tiny.write_bytes(b"too small\n" * 100)
    with pytest.raises(ValueError, match="too small"):
        prepare.prepare(str(tiny))


def test_evaluate_bpb_scores_a_fixed_slice(cache: Path) -> None:
    torch = pytest.importorskip("torch")

    class Uniform(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(*x.shape, prepare.VOCAB_SIZE)

    class Unigram(torch.nn.Module):
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

    class WrongShape(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(x.shape[0], prepare.VOCAB_SIZE)

    with pytest.raises(ValueError, match="logits of shape"):
        prepare.evaluate_bpb(WrongShape(), "cpu", 64)


def test_get_batch_targets_are_inputs_shifted(cache: Path) -> None:
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(0)
    x, y = prepare.get_batch("train", 4, 32, "cpu", gen)
    assert x.shape == y.shape == (4, 32)
    assert x.dtype == y.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    again_x, _ = prepare.get_batch("train", 4, 32, "cpu", torch.Generator().manual_seed(0))
    assert torch.equal(x, again_x)


def test_train_runs_learns_and_reports_last(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    env = {k: v for k, v in os.environ.items() if k != "AUTORESEARCH_CORPUS"}
    env.update(AUTORESEARCH_BUDGET="3", XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, "train.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    match = re.fullmatch(r"val_bpb: (\d+\.\d{6})", lines[-1])
    assert match, lines[-5:]
    val_bpb = float(match.group(1))
    assert math.isfinite(val_bpb) and val_bpb < 8.5
    summary = lines[lines.index("---") + 1 : -1]
    keys = {line.split(":", 1)[0] for line in summary}
    assert {"training_seconds", "steps", "tokens_seen", "params", "device"} <= keys
    steps = int(next(line for line in summary if line.startswith("steps:")).split(":", 1)[1])
    assert steps > 0

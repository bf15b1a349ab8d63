"""
Fixed data preparation and evaluation for the bundled task: a byte-level GPT scored in bits per byte.

This file is part of the task's contract and is never edited by the experiment loop; train.py is.
It owns three things:

  1. the corpus: by default the source files (*.py) of the running interpreter's standard library,
     which needs no network; or a corpus the person names explicitly (a local file or a URL)
  2. the loaders: get_batch() draws random training (or validation) windows
  3. the metric: evaluate_bpb() scores a fixed, deterministic slice of the validation bytes

Usage:
    python prepare.py                         # build (or verify) the default stdlib corpus and print a summary
    python prepare.py --corpus input.txt      # build a corpus from a local text file
    python prepare.py --corpus https://...    # download once into the cache, then build from it
    AUTORESEARCH_CORPUS=input.txt python train.py   # train on the same custom corpus

The corpus is chosen by --corpus here, and by the environment variable AUTORESEARCH_CORPUS everywhere
(train.py included). A URL is fetched only when named that way; once it sits in the cache, later runs
with the same URL read the cached copy and need no network.

Model contract for evaluate_bpb(): model(x) takes a LongTensor of byte values, shape (B, T) with
T <= block_size, and returns logits of shape (B, T, 256); position t predicts byte t + 1.

Cache layout ($XDG_CACHE_HOME or ~/.cache, then autoresearch/):
    <name>-<key>/train.bin, val.bin, manifest.json
where <key> fingerprints the source, and the manifest records the sha256 of both splits. The manifest is
written last and every load checks sizes and hashes, so a partial or corrupted cache is rebuilt.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import math
import os
import sys
import sysconfig
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported lazily so that building the cache does not need it
    import torch

# ---------------------------------------------------------------------------
# Constants (fixed: changing any of them changes the metric)

VOCAB_SIZE = 256  # byte-level: every byte value is a token
FORMAT_VERSION = 1  # bump when the corpus layout changes, so old caches are not reused
MAX_CORPUS_BYTES = 24 * 1024 * 1024  # cap on the stdlib corpus; keeps the build to about a second
MAX_CUSTOM_BYTES = 1024 * 1024 * 1024  # cap on a person's own corpus (it is held in memory)
VAL_PERCENT = 5  # share of the corpus held out for validation
FILE_SEPARATOR = b"\n\n"  # between concatenated source files
SKIP_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "__pycache__"})
EVAL_TOKENS = 65536  # bytes scored by evaluate_bpb; a couple of seconds on a laptop CPU at the default size
EVAL_SEGMENTS = 16  # the scored bytes come from this many evenly spaced stretches of the val split
EVAL_BATCH_SIZE = 16  # windows per forward pass during evaluation (does not change the result)
CORPUS_ENV = "AUTORESEARCH_CORPUS"  # names a custom corpus: a local file path or an http(s) URL
DOWNLOAD_TIMEOUT = 60  # seconds per network read when a URL corpus is fetched


# ---------------------------------------------------------------------------
# Cache locations


def cache_root() -> Path:
    """The directory that holds every prepared corpus: $XDG_CACHE_HOME/autoresearch or ~/.cache/autoresearch."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "autoresearch"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    # temp file in the same directory + os.replace: readers see the old file or the whole new one, never a part
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------
# Sources: where the raw bytes come from


@dataclass(frozen=True)
class Source:
    """A recipe for a corpus: a cache key that changes whenever the input changes, and a way to build it."""

    name: str  # short label used in the cache directory name
    description: str  # shown in summaries
    key: str  # fingerprint of the input (paths, sizes, mtimes, settings); cheap to compute
    kind: str  # "stdlib" or "file"
    path: Path


def _stdlib_files(root: Path) -> list[tuple[str, Path]]:
    """Every *.py file under root outside SKIP_DIRS, sorted by relative POSIX path so the order is reproducible."""
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for fn in filenames:
            if fn.endswith(".py"):
                full = Path(dirpath) / fn
                found.append((full.relative_to(root).as_posix(), full))
    found.sort(key=lambda item: item[0])
    return found


def stdlib_source() -> Source:
    root = Path(sysconfig.get_paths()["stdlib"])
    h = hashlib.sha256(f"stdlib v{FORMAT_VERSION} cap={MAX_CORPUS_BYTES} val={VAL_PERCENT}\n".encode())
    for rel, full in _stdlib_files(root):
        try:
            st = full.stat()
        except OSError:
            continue
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    major, minor = sys.version_info[:2]
    return Source(f"stdlib-py{major}{minor}", f"python {major}.{minor} stdlib at {root}", h.hexdigest(), "stdlib", root)


def _download(url: str) -> Path:
    """Fetch url once into the cache; later calls with the same URL reuse the copy without touching the network."""
    parsed = urllib.parse.urlparse(url)
    base = os.path.basename(parsed.path) or "corpus"
    dest = cache_root() / "downloads" / f"{_sha256(url.encode())[:16]}-{base}"
    if dest.is_file():
        return dest
    print(f"downloading {url} -> {dest}", file=sys.stderr)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp:
            total = 0
            while chunk := resp.read(1 << 20):
                total += len(chunk)
                if total > MAX_CUSTOM_BYTES:
                    raise ValueError(f"{url} is larger than MAX_CUSTOM_BYTES ({MAX_CUSTOM_BYTES} bytes)")
                out.write(chunk)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return dest


def file_source(spec: str) -> Source:
    """A custom corpus: a local file, or an http(s) URL that is downloaded into the cache first."""
    if spec.startswith(("http://", "https://")):
        path = _download(spec)
        description = f"{spec} (cached at {path})"
    else:
        path = Path(spec).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"corpus file not found: {spec}")
        description = str(path)
    st = path.stat()
    key = _sha256(f"file v{FORMAT_VERSION} val={VAL_PERCENT}\n{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in path.stem)[:32] or "corpus"
    return Source(f"file-{stem}", description, key, "file", path)


def resolve_source(corpus: str | None = None) -> Source:
    """The source named by `corpus`, else by $AUTORESEARCH_CORPUS, else the interpreter's stdlib."""
    spec = corpus if corpus is not None else os.environ.get(CORPUS_ENV, "").strip()
    return file_source(spec) if spec else stdlib_source()


# ---------------------------------------------------------------------------
# Building and verifying the cache


def _is_val_file(rel: str) -> bool:
    # the split depends on the path only, so it is stable when other files come and go
    return int(_sha256(rel.encode())[:8], 16) % 100 < VAL_PERCENT


def _build_stdlib(root: Path) -> tuple[bytes, bytes, int]:
    train: list[bytes] = []
    val: list[bytes] = []
    total = 0
    nfiles = 0
    for rel, full in _stdlib_files(root):
        try:
            data = full.read_bytes()
        except OSError:
            continue
        if total + len(data) > MAX_CORPUS_BYTES:
            break
        total += len(data) + len(FILE_SEPARATOR)
        nfiles += 1
        (val if _is_val_file(rel) else train).append(data)
    return FILE_SEPARATOR.join(train), FILE_SEPARATOR.join(val), nfiles


def _build_file(path: Path) -> tuple[bytes, bytes, int]:
    with open(path, "rb") as f:
        data = f.read(MAX_CUSTOM_BYTES)
    # the val split is the tail, cut at a line break when there is one nearby, so no line straddles the split
    cut = len(data) - len(data) * VAL_PERCENT // 100
    newline = data.rfind(b"\n", max(0, cut - 4096), cut)
    if newline >= 0:
        cut = newline + 1
    return data[:cut], data[cut:], 1


@dataclass(frozen=True)
class CorpusInfo:
    """What a prepared corpus looks like on disk."""

    directory: Path
    description: str
    sha256: str  # hash of the train and val contents together
    train_bytes: int
    val_bytes: int
    files: int
    built: bool  # True when this call (re)built the cache, False when it verified an existing one
    seconds: float


def _manifest_ok(directory: Path) -> dict[str, Any] | None:
    """The manifest when the cache is complete and intact, else None."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
        for split in ("train", "val"):
            entry = manifest[split]
            data = (directory / f"{split}.bin").read_bytes()
            if len(data) != entry["bytes"] or _sha256(data) != entry["sha256"]:
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return manifest


def prepare(corpus: str | None = None) -> CorpusInfo:
    """Make sure the corpus is in the cache and intact; build it (or rebuild a damaged one) when it is not."""
    t0 = time.perf_counter()
    source = resolve_source(corpus)
    directory = cache_root() / f"{source.name}-{source.key[:16]}"
    manifest = _manifest_ok(directory)
    built = manifest is None
    if manifest is None:
        if source.kind == "stdlib":
            train, val, nfiles = _build_stdlib(source.path)
        else:
            train, val, nfiles = _build_file(source.path)
        if len(val) < EVAL_TOKENS + 1 or len(train) < 2 * EVAL_TOKENS:
            raise ValueError(
                f"corpus too small: {len(train)} train / {len(val)} val bytes; "
                f"need at least {2 * EVAL_TOKENS} / {EVAL_TOKENS + 1}"
            )
        # the manifest goes last: its presence is what marks the cache as complete
        with contextlib.suppress(OSError):
            (directory / "manifest.json").unlink()
        _atomic_write(directory / "train.bin", train)
        _atomic_write(directory / "val.bin", val)
        manifest = {
            "format": FORMAT_VERSION,
            "source": source.description,
            "key": source.key,
            "files": nfiles,
            "sha256": _sha256(train + val),
            "train": {"bytes": len(train), "sha256": _sha256(train)},
            "val": {"bytes": len(val), "sha256": _sha256(val)},
        }
        _atomic_write(directory / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    return CorpusInfo(
        directory=directory,
        description=str(manifest["source"]),
        sha256=str(manifest["sha256"]),
        train_bytes=int(manifest["train"]["bytes"]),
        val_bytes=int(manifest["val"]["bytes"]),
        files=int(manifest["files"]),
        built=built,
        seconds=time.perf_counter() - t0,
    )


# ---------------------------------------------------------------------------
# Loading into tensors


@functools.cache
def _split_tensor(split: str, corpus: str | None, root: Path) -> torch.Tensor:
    # one read per process, split, corpus and cache root; prepare() verifies (or rebuilds) the cache first
    import torch

    info = prepare(corpus)
    data = bytearray((info.directory / f"{split}.bin").read_bytes())
    return torch.frombuffer(data, dtype=torch.uint8)


def load_split(split: str) -> torch.Tensor:
    """The whole train or val split as a 1-D uint8 tensor on the CPU."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', not {split!r}")
    return _split_tensor(split, os.environ.get(CORPUS_ENV, "").strip() or None, cache_root())


def get_batch(
    split: str,
    batch_size: int,
    block_size: int,
    device: str | torch.device,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows from a split: x is (batch_size, block_size) bytes as int64, y is x shifted left by one."""
    import torch

    data = load_split(split)
    if block_size + 1 > len(data):
        raise ValueError(f"block_size {block_size} is longer than the {split} split ({len(data)} bytes)")
    starts = torch.randint(0, len(data) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size + 1)
    windows = data[starts[:, None] + offsets].long()
    x, y = windows[:, :-1], windows[:, 1:]
    if torch.device(device).type == "cuda":
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.contiguous().to(device), y.contiguous().to(device)


# ---------------------------------------------------------------------------
# Evaluation (the metric)


def _eval_windows(val_len: int, block_size: int) -> Iterator[tuple[int, int]]:
    """(start, length) of every window evaluate_bpb scores; together they cover exactly EVAL_TOKENS targets.

    The scored bytes depend only on the val split, never on block_size: EVAL_SEGMENTS evenly spaced stretches of
    EVAL_TOKENS // EVAL_SEGMENTS bytes each. block_size only decides how much context each prediction gets
    (each window starts with no context), so a model with a longer context can genuinely score better.
    """
    seg_len = EVAL_TOKENS // EVAL_SEGMENTS
    span = val_len - seg_len - 1
    for i in range(EVAL_SEGMENTS):
        seg_start = i * span // max(1, EVAL_SEGMENTS - 1)
        for off in range(0, seg_len, block_size):
            yield seg_start + off, min(block_size, seg_len - off)


def evaluate_bpb(
    model: torch.nn.Module,
    device: str | torch.device,
    block_size: int,
    batch_size: int = EVAL_BATCH_SIZE,
) -> float:
    """Bits per byte of `model` on the fixed validation slice (EVAL_TOKENS bytes). Lower is better.

    model(x) must map a (B, T) LongTensor of bytes to (B, T, 256) logits, for any T <= block_size.
    Bits per byte is the mean cross-entropy in nats divided by ln 2; a uniform guess scores exactly 8.0.
    The model is put in eval mode for the duration and restored afterwards.
    """
    import torch
    import torch.nn.functional as F

    val = load_split("val")
    if block_size < 1:
        raise ValueError(f"block_size must be positive, not {block_size}")
    # windows of equal length share a forward pass; there are at most two lengths (full and the segment tail)
    by_length: dict[int, list[int]] = {}
    for start, length in _eval_windows(len(val), block_size):
        by_length.setdefault(length, []).append(start)

    was_training = model.training
    model.eval()
    total_nats = 0.0
    total_tokens = 0
    try:
        with torch.no_grad():
            for length, starts in sorted(by_length.items()):
                offsets = torch.arange(length + 1)
                for i in range(0, len(starts), batch_size):
                    idx = torch.tensor(starts[i : i + batch_size])[:, None] + offsets
                    windows = val[idx].long().to(device)
                    x, y = windows[:, :-1], windows[:, 1:]
                    logits = model(x)
                    if tuple(logits.shape) != (x.shape[0], x.shape[1], VOCAB_SIZE):
                        raise ValueError(
                            f"model(x) must return logits of shape {(x.shape[0], x.shape[1], VOCAB_SIZE)}, "
                            f"got {tuple(logits.shape)}"
                        )
                    # per-token losses summed in float64, so the result does not drift with batch composition
                    nats = F.cross_entropy(logits.float().reshape(-1, VOCAB_SIZE), y.reshape(-1), reduction="none")
                    total_nats += float(nats.double().sum().item())
                    total_tokens += y.numel()
    finally:
        model.train(was_training)
    assert total_tokens == EVAL_SEGMENTS * (EVAL_TOKENS // EVAL_SEGMENTS)
    bpb = total_nats / total_tokens / math.log(2)
    if not math.isfinite(bpb):
        raise FloatingPointError(f"val_bpb is not finite ({bpb})")
    return bpb


# ---------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build or verify the byte-level corpus used by train.py.")
    parser.add_argument(
        "--corpus",
        default=None,
        help=f"a local text file or an http(s) URL to use instead of the stdlib sources (also ${CORPUS_ENV})",
    )
    args = parser.parse_args(argv)
    info = prepare(args.corpus)
    print("---")
    print(f"source:        {info.description}")
    print(f"files:         {info.files}")
    print(f"corpus_bytes:  {info.train_bytes + info.val_bytes}")
    print(f"train_bytes:   {info.train_bytes}")
    print(f"val_bytes:     {info.val_bytes}")
    print(f"eval_tokens:   {EVAL_TOKENS}")
    print(f"sha256:        {info.sha256}")
    print(f"path:          {info.directory}")
    print(f"status:        {'built' if info.built else 'cached'} in {info.seconds:.2f}s")
    if args.corpus and not os.environ.get(CORPUS_ENV):
        print(f"note:          run train.py with {CORPUS_ENV}={args.corpus} to train on this corpus")
    return 0


if __name__ == "__main__":
    sys.exit(main())

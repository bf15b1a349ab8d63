"""
Fixed data and trusted evaluation for the bundled task: a byte-level GPT scored in bits per byte.

This file is part of the task's contract and is never edited by the experiment loop; train.py is.
It owns four things:

  1. the data: by default the source files (*.py) of the running interpreter's standard library (no network),
     or a corpus the person names (a local file or a URL), split into train.bin and a held-out val.bin
  2. the loaders: get_batch() draws random training windows; nothing a run calls ever builds data
  3. the hand-over: export_model() writes the trained model to model.pt2 (a torch.export program: weights and
     a graph of ATen ops, so the evaluator never runs Python written by the run)
  4. the metric: `python prepare.py --evaluate` checks model.pt2 and scores it on the held-out bytes;
     evaluate_bpb() is the same arithmetic for a model in memory

Usage:
    python prepare.py                         # build (or verify) the data once, before any run; prints a summary
    python prepare.py --corpus input.txt      # build from a local text file (keep it outside the repository)
    python prepare.py --corpus https://...    # download once into data/, then build from it
    python prepare.py --evaluate              # score $AUTORESEARCH_OUT/model.pt2 (or --out DIR); last line val_bpb
    AUTORESEARCH_CORPUS=input.txt python train.py   # train on the same custom corpus

The data folder is data/ next to this file, or $AUTORESEARCH_DATA:
    <corpus>/manifest.json, train.bin               what a run reads
    <corpus>/heldout/salt, val.bin, manifest.json   what only the evaluator reads (program.md hides data/*/heldout)
    downloads/heldout/<file>                        a downloaded corpus, held out because it holds val.bin's bytes
Manifests are written last and every load checks sizes and hashes; `python prepare.py` rebuilds what is damaged
with the same salt, so the split does not change.

The stdlib is readable by every process, so its files are split by a hash salted with a secret drawn once per
data folder, and UNUSED_PERCENT of them go to neither split: a run that compares train.bin with the stdlib cannot
tell which of the missing files are scored. A run can still read the whole stdlib; only a corpus kept out of its
view (--corpus) is private.

Model contract: model(x) maps a (B, T) int64 tensor of bytes to (B, T, 256) logits; position t predicts byte t + 1
and may depend only on bytes 0..t of its own row.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import json
import math
import operator
import os
import re
import secrets
import sys
import sysconfig
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported lazily so that building the data does not need it
    import torch

# ---------------------------------------------------------------------------
# Constants (fixed: changing any of them changes the metric)

# fmt: off
VOCAB_SIZE = 256                       # byte-level: every byte value is a token
FORMAT_VERSION = 2                     # bump when the data layout changes, so old folders are rebuilt
MAX_CORPUS_BYTES = 24 * 1024 * 1024    # cap on the stdlib corpus; keeps the build to about a second
MAX_CUSTOM_BYTES = 1024 * 1024 * 1024  # cap on a person's own corpus (it is held in memory)
VAL_PERCENT = 5                        # share of the corpus held out for validation
UNUSED_PERCENT = 15                    # stdlib files in neither split, so train.bin does not spell out val.bin
FILE_SEPARATOR = b"\n\n"               # between concatenated source files
SKIP_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "__pycache__"})
EVAL_TOKENS = 65536                    # bytes scored; a couple of seconds on a laptop CPU at the default size
EVAL_SEGMENTS = 16                     # the scored bytes come from this many evenly spaced stretches of val.bin
EVAL_BATCH_SIZE = 16                   # windows per forward pass; model.pt2 is exported for this batch size
CAUSAL_TOLERANCE = 1e-4                # max logit change allowed when later bytes change (see _score)
CORPUS_ENV = "AUTORESEARCH_CORPUS"     # names a custom corpus: a local file path or an http(s) URL
DATA_ENV = "AUTORESEARCH_DATA"         # the data folder, when not data/ next to this file
OUT_ENV = "AUTORESEARCH_OUT"           # where a run hands its model over (the harness sets it)
MODEL_FILE = "model.pt2"
DOWNLOAD_TIMEOUT = 60                  # seconds per network read when a URL corpus is fetched
# fmt: on

# Ops of the allowed namespaces (aten, prims) that reach outside tensor arithmetic in this torch version, found by
# reading every aten/prims schema for files, streams, printing, RPC, seeds and allocation. Other namespaces
# (debugprims.load_tensor, profiler, c10d, higher-order ops...) are refused whole.
FORBIDDEN_OPS = {
    "aten::from_file": "reads or maps a file",
    "aten::save": "writes a file",
    "aten::_print": "writes to stdout, where the metric is read",
    "aten::warn": "writes to stderr",
    "aten::_test_warn_in_autograd": "writes to stderr",
    "aten::manual_seed": "reseeds the process",
    "aten::seed": "reseeds the process",
    **{
        f"aten::{name}": "uses remote references (the network)"
        for name in ("to_here", "local_value", "owner", "owner_name", "is_owner", "confirmed_by_owner", "wait")
    },
    # freed memory can hold an earlier pass's bytes, including those after a causality cut
    **{
        name: "returns uninitialised memory (use zeros)"
        for name in (
            *("aten::empty", "aten::empty_like", "aten::empty_strided", "aten::empty_permuted", "aten::new_empty"),
            *("aten::new_empty_strided", "aten::empty_quantized", "aten::_empty_affine_quantized"),
            *("aten::_empty_per_channel_affine_quantized", "prims::empty", "prims::empty_strided"),
            "prims::empty_permuted",
        )
    },
}


class DataError(SystemExit):
    """A file this task needs is missing or damaged; uncaught, it ends the process with its one line (status 1)."""


class Rejected(Exception):
    """model.pt2 breaks a rule of the evaluation; the message says which."""


# ---------------------------------------------------------------------------
# Places


def data_root() -> Path:
    """The data folder: $AUTORESEARCH_DATA, else data/ next to this file."""
    return Path(os.environ.get(DATA_ENV) or Path(__file__).resolve().parent / "data")


def output_dir() -> Path:
    """Where a run hands its model over: $AUTORESEARCH_OUT, else out/ next to this file (a run by hand)."""
    return Path(os.environ.get(OUT_ENV) or Path(__file__).resolve().parent / "out")


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)


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
        # readable by everyone: a sandboxed run may be another user; the sandbox, not the mode, hides held-out data
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------
# Sources: where the raw bytes come from


@dataclass(frozen=True)
class Source:
    """A recipe for a corpus: its folder name, a key that changes whenever the input changes, and its input."""

    name: str  # the folder under data/; known without touching the input, so runs find it in their sandbox
    description: str  # shown in summaries
    key: str  # fingerprint of the input (paths, sizes, mtimes, settings); cheap to compute
    kind: str  # "stdlib" or "file"
    path: Path


def _corpus_spec(corpus: str | None) -> str:
    return corpus if corpus is not None else os.environ.get(CORPUS_ENV, "").strip()


def corpus_name(corpus: str | None = None) -> str:
    """The folder name under data/ of the corpus named by `corpus`, else by $AUTORESEARCH_CORPUS, else the stdlib."""
    spec = _corpus_spec(corpus)
    if not spec:
        return f"stdlib-py{sys.version_info[0]}{sys.version_info[1]}"
    is_url = spec.startswith(("http://", "https://"))
    where = spec if is_url else str(Path(spec).expanduser().resolve())
    stem = Path(urllib.parse.urlparse(spec).path if is_url else spec).stem
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:32] or "corpus"
    return f"{'url' if is_url else 'file'}-{stem}-{_sha256(where.encode())[:8]}"


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


def _download(url: str) -> Path:
    """Fetch url once into data/downloads/heldout; later calls reuse the copy without touching the network."""
    base = os.path.basename(urllib.parse.urlparse(url).path) or "corpus"
    dest = data_root() / "downloads" / "heldout" / f"{_sha256(url.encode())[:16]}-{base}"
    if dest.is_file():
        return dest
    print(f"downloading {url} -> {_shown(dest)}", file=sys.stderr)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp:
            total = 0
            while chunk := resp.read(1 << 20):
                total += len(chunk)
                if total > MAX_CUSTOM_BYTES:
                    raise DataError(f"{url} is larger than MAX_CUSTOM_BYTES ({MAX_CUSTOM_BYTES} bytes)")
                out.write(chunk)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return dest


def resolve_source(corpus: str | None = None) -> Source:
    """The source named by `corpus`, else by $AUTORESEARCH_CORPUS, else the interpreter's stdlib; raises DataError."""
    spec = _corpus_spec(corpus)
    if not spec:
        root = Path(sysconfig.get_paths()["stdlib"])
        h = hashlib.sha256(f"stdlib v{FORMAT_VERSION} cap={MAX_CORPUS_BYTES} {VAL_PERCENT}/{UNUSED_PERCENT}\n".encode())
        for rel, full in _stdlib_files(root):
            with contextlib.suppress(OSError):
                st = full.stat()
                h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return Source(
            corpus_name(spec), f"python {sys.version.split()[0]} stdlib at {root}", h.hexdigest(), "stdlib", root
        )
    if spec.startswith(("http://", "https://")):
        path, description = _download(spec), spec
    else:
        path = Path(spec).expanduser().resolve()
        if not path.is_file():
            raise DataError(f"corpus file not found: {spec}")
        description = str(path)
    st = path.stat()
    key = _sha256(f"file v{FORMAT_VERSION} val={VAL_PERCENT}\n{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return Source(corpus_name(spec), description, key, "file", path)


# ---------------------------------------------------------------------------
# Building and verifying the data


def _build_stdlib(root: Path, salt: str) -> tuple[bytes, bytes, int]:
    train: list[bytes] = []
    val: list[bytes] = []
    total = 0
    for rel, full in _stdlib_files(root):
        # the salted bucket depends on the path only, so the split is stable when other files come and go
        bucket = int(_sha256(f"{salt}\0{rel}".encode())[:8], 16) % 100
        if VAL_PERCENT <= bucket < VAL_PERCENT + UNUSED_PERCENT:
            continue
        try:
            data = full.read_bytes()
        except OSError:
            continue
        if total + len(data) > MAX_CORPUS_BYTES:
            break
        total += len(data) + len(FILE_SEPARATOR)
        (val if bucket < VAL_PERCENT else train).append(data)
    return FILE_SEPARATOR.join(train), FILE_SEPARATOR.join(val), len(train) + len(val)


def _build_file(path: Path) -> tuple[bytes, bytes, int]:
    with open(path, "rb") as f:
        data = f.read(MAX_CUSTOM_BYTES)
    # the val split is the tail, cut at a line break when there is one nearby, so no line straddles the split
    cut = len(data) - len(data) * VAL_PERCENT // 100
    newline = data.rfind(b"\n", max(0, cut - 4096), cut)
    if newline >= 0:
        cut = newline + 1
    return data[:cut], data[cut:], 1


def _verified(folder: Path, split: str) -> tuple[dict[str, Any], bytes] | None:
    """folder/manifest.json and folder/<split>.bin when the bytes match the manifest's size and hash, else None."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        data = (folder / f"{split}.bin").read_bytes()
        if len(data) != manifest[split]["bytes"] or _sha256(data) != manifest[split]["sha256"]:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return manifest, data


def _salt(heldout: Path) -> tuple[str, bool]:
    """The data folder's secret salt and whether it was drawn just now (a new split)."""
    with contextlib.suppress(OSError):
        salt = (heldout / "salt").read_text().strip()
        if re.fullmatch(r"[0-9a-f]{64}", salt):
            return salt, False
    salt = secrets.token_hex(32)
    _atomic_write(heldout / "salt", (salt + "\n").encode())
    return salt, True


@dataclass(frozen=True)
class CorpusInfo:
    """What a prepared corpus looks like on disk."""

    directory: Path
    description: str
    sha256: str  # hash of the train and val contents together
    train_bytes: int
    val_bytes: int
    files: int
    built: bool  # True when this call (re)built the data, False when it verified what was there
    new_split: bool  # True when this call drew a new salt, so val_bpb is not comparable with earlier figures
    seconds: float


def prepare(corpus: str | None = None) -> CorpusInfo:
    """Make sure the corpus is built and intact; build it (or rebuild a damaged one) when not. Raises DataError."""
    t0 = time.perf_counter()
    source = resolve_source(corpus)
    directory = data_root() / source.name
    heldout = directory / "heldout"
    salt, new_split = _salt(heldout)
    split_id = _sha256(salt.encode())[:16]  # ties train.bin to its val.bin without revealing the salt
    top, held = [found[0] if (found := _verified(f, s)) else None for f, s in ((directory, "train"), (heldout, "val"))]
    built = not (top and held and top.get("key") == source.key and top.get("split") == held.get("split") == split_id)
    if built:
        train, val, nfiles = _build_stdlib(source.path, salt) if source.kind == "stdlib" else _build_file(source.path)
        if len(val) < EVAL_TOKENS + 1 or len(train) < 2 * EVAL_TOKENS:
            raise DataError(f"corpus too small: {len(train)} train / {len(val)} val bytes; need at least "
                            f"{2 * EVAL_TOKENS} / {EVAL_TOKENS + 1}")  # fmt: skip
        # the top manifest goes last: its presence is what marks the folder as complete
        for stale in (directory / "manifest.json", heldout / "manifest.json"):
            with contextlib.suppress(OSError):
                stale.unlink()
        _atomic_write(heldout / "val.bin", val)
        held = {"format": FORMAT_VERSION, "split": split_id, "val": {"bytes": len(val), "sha256": _sha256(val)}}
        _atomic_write(heldout / "manifest.json", (json.dumps(held, indent=2) + "\n").encode())
        _atomic_write(directory / "train.bin", train)
        top = {"format": FORMAT_VERSION, "source": source.description, "key": source.key, "split": split_id}
        top |= {"files": nfiles, "sha256": _sha256(train + val)}
        top["train"] = {"bytes": len(train), "sha256": _sha256(train)}
        _atomic_write(directory / "manifest.json", (json.dumps(top, indent=2) + "\n").encode())
    for path in (*directory.glob("*.*"), *heldout.glob("*")):  # data written private by an older prepare.py
        if path.is_file() and path.stat().st_mode & 0o044 != 0o044:
            path.chmod(0o644)
    assert top is not None and held is not None
    return CorpusInfo(
        directory=directory,
        description=str(top["source"]),
        sha256=str(top["sha256"]),
        train_bytes=int(top["train"]["bytes"]),
        val_bytes=int(held["val"]["bytes"]),
        files=int(top["files"]),
        built=built,
        new_split=new_split,
        seconds=time.perf_counter() - t0,
    )


# ---------------------------------------------------------------------------
# Loading into tensors (never builds: a run's view is thrown away, and a run must never draw the split)


@functools.cache
def _split_tensor(path: str, split: str, size: int, mtime_ns: int) -> torch.Tensor:
    # one read per file version and process; the size and mtime in the key make a rebuilt file a new entry
    import torch

    found = _verified(Path(path).parent, split)
    if found is None and not os.access(path, os.R_OK):
        raise DataError(f"{_shown(Path(path))} cannot be read by this user: run `python prepare.py` to fix it")
    if found is None:
        raise DataError(f"{_shown(Path(path))} is damaged: run `python prepare.py` to rebuild it")
    return torch.frombuffer(bytearray(found[1]), dtype=torch.uint8)


def load_split(split: str, corpus: str | None = None) -> torch.Tensor:
    """The whole train or val split as a 1-D uint8 tensor on the CPU; raises DataError when it is not prepared."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', not {split!r}")
    directory = data_root() / corpus_name(corpus)
    path = directory / "train.bin" if split == "train" else directory / "heldout" / "val.bin"
    try:
        st = path.stat()
    except OSError:
        raise DataError(f"{_shown(path)} is missing: run `python prepare.py` first (once, outside any run)") from None
    return _split_tensor(str(path), split, st.st_size, st.st_mtime_ns)


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
# The metric for a model in memory


def _eval_windows(val_len: int, block_size: int) -> Iterator[tuple[int, int]]:
    """(start, length) of every window scored; together they cover exactly EVAL_TOKENS targets.

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
    The model is put in eval mode for the duration and restored afterwards. Needs the held-out split.
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
# The hand-over: model.pt2


def export_model(model: torch.nn.Module, block_size: int, out: Path | None = None) -> Path:
    """Write `model` as out/model.pt2 (out defaults to output_dir()) for the evaluator; returns the file's path."""
    import torch
    from torch.export.passes import move_to_device_pass

    model = getattr(model, "_orig_mod", model)  # a torch.compile wrapper exports as the module it wraps
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    example = torch.zeros(EVAL_BATCH_SIZE, block_size, dtype=torch.long, device=device)
    was_training = model.training
    model.eval()  # dropout off: the evaluator requires the same logits for the same bytes
    try:
        with torch.no_grad():
            program = torch.export.export(model, (example,))
    finally:
        model.train(was_training)
    # functional form: no in-place ops, and any state the model changes shows up as an output the evaluator refuses
    program = move_to_device_pass(program.run_decompositions({}), "cpu")  # CPU weights load on any machine
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    path = (out or output_dir()) / MODEL_FILE
    _atomic_write(path, buffer.getvalue())
    return path


# ---------------------------------------------------------------------------
# The evaluator: load model.pt2 without running anything it carries, check it, score it

_ENTRY = re.compile(r"archive_format|archive_version|byteorder|\.data/(version|serialization_id)|models/model\.json"
                    r"|data/sample_inputs/model\.pt|data/(weights/model_weights|constants/model_constants)_config\.json"
                    r"|data/weights/weight_\d+|data/constants/tensor_\d+")  # fmt: skip
# names, FQNs, versions: no quotes or brackets FX could paste into code, no dunder attribute on any dotted part
_PLAIN = re.compile(r"(?!__)[A-Za-z0-9_+\-]*(\.(?!__)[A-Za-z0-9_+\-]*)*")
_FREE_TEXT = {"as_string", "as_strings"}  # op arguments, printed with repr() in generated code
# symbolic expressions go through sympy.sympify (an eval); subgraphs, opaque objects and ops as values do not belong
_REFUSED_KEYS = {"as_expr", "expr_str", "as_graph", "as_custom_obj", "as_operator"}
# the pytree specs of one tensor in, one tensor out; any other spec could name a module for pytree to import
_LEAF = {"type": None, "context": None, "children_spec": []}
_TUPLE = {"type": "builtins.tuple", "context": "null"}
_NO_KWARGS = {"type": "builtins.dict", "context": "[]", "children_spec": []}
_SPECS = {
    "in_spec": [1, {**_TUPLE, "children_spec": [{**_TUPLE, "children_spec": [_LEAF]}, _NO_KWARGS]}],
    "out_spec": [1, _LEAF],
}


def _walk(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(key, scalar) for every scalar in a JSON value, and (key, None) for every key that holds a container."""
    items = value.items() if isinstance(value, dict) else ((key, v) for v in value)
    for k, v in items:
        if isinstance(v, dict | list):
            yield k, None
            yield from _walk(v, k)
        else:
            yield k, v


def _clean_archive(raw: bytes, shown: str) -> bytes:
    """model.pt2 rebuilt from parts that load without pickle, sympy or code: raw tensors and checked JSON."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        infos = archive.infolist()
        root = infos[0].filename.split("/", 1)[0] if infos else ""
        parts: dict[str, bytes] = {}
        for info in infos:
            head, _, name = info.filename.partition("/")
            if head != root or not _ENTRY.fullmatch(name) or info.compress_type != zipfile.ZIP_STORED:
                raise Rejected(f"{shown} holds {info.filename!r}, which is not a plain export (use export_model)")
            parts[name] = archive.read(info)
        configs = {
            **json.loads(parts["data/weights/model_weights_config.json"])["config"],
            **json.loads(parts["data/constants/model_constants_config.json"])["config"],
        }
        program = json.loads(parts["models/model.json"])
        _check_program_json(program, configs, shown)
    except (zipfile.BadZipFile, KeyError, TypeError, ValueError, AttributeError) as e:  # ValueError: JSON, UTF-8
        raise DataError(f"{shown} is damaged ({type(e).__name__}: {e}); rerun train.py to write it again") from None
    parts["models/model.json"] = json.dumps(program).encode()
    parts["data/sample_inputs/model.pt"] = b""  # example inputs are a pickle; the evaluator makes its own
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as clean:
        for name, data in parts.items():
            clean.writestr(f"{root}/{name}", data)
    return out.getvalue()


def _check_program_json(program: dict[str, Any], configs: dict[str, Any], shown: str) -> None:
    """Refuse what torch.export.load would run or eval; strip the free text FX would write into generated code."""
    for fqn, entry in configs.items():
        if entry["use_pickle"] is not False or not re.fullmatch(r"(weight|tensor)_\d+", entry["path_name"]):
            raise Rejected(f"{shown} stores {fqn!r} as a pickle, which could run code; only raw tensors are accepted")
    module = program["graph_module"]
    graph = module["graph"]
    for node in graph["nodes"]:
        node["metadata"] = {}  # stack traces and annotations
        if not _is_op(str(node["target"])):
            # side effects come wrapped (higher_order.with_effects): name the op inside when it is a forbidden one
            for _, inner in _walk(node["inputs"]):
                name = "::".join(str(inner).split(".")[2:4])
                if str(inner).startswith("torch.ops.") and name in FORBIDDEN_OPS:
                    raise Rejected(f"forbidden op {str(inner)[10:]}: it {FORBIDDEN_OPS[name]}")
            raise Rejected(f"op {node['target']} is not allowed: only aten and prims ops (and getitem) run here")
    module["metadata"] = {}
    symbolic = [k for k in ("sym_int_values", "sym_bool_values", "sym_float_values", "custom_obj_values") if graph[k]]
    if symbolic or program["guards_code"] or program["range_constraints"] or module["treespec_namedtuple_fields"]:
        raise Rejected(f"{shown} has symbolic shapes, guards or custom objects; export with a fixed input shape")
    for key, value in [*_walk(program), *_walk(configs)]:
        if key in _REFUSED_KEYS:
            raise Rejected(f"{shown} holds {key!r}, which the evaluator does not load")
        if key in _SPECS:
            if json.loads(value) != _SPECS[key]:
                raise Rejected("model(x) must take one tensor of bytes and return one tensor of logits")
        elif key == "target" or key in _FREE_TEXT:
            continue  # op names were checked above
        elif not _PLAIN.fullmatch(key) or (isinstance(value, str) and not _PLAIN.fullmatch(value)):
            raise Rejected(f"{shown} holds an unexpected string under {key[:60]!r}: {str(value)[:60]!r}")


def _is_op(target: str) -> bool:
    """Whether target names an overload of a real aten or prims op (or getitem), checked without calling anything."""
    import torch

    namespace, _, rest = target.removeprefix("torch.ops.").partition(".")
    name, _, overload = rest.partition(".")
    if target == "_operator.getitem":
        return True
    if not target.startswith("torch.ops.") or namespace not in ("aten", "prims"):
        return False
    with contextlib.suppress(AttributeError, RuntimeError):  # an unknown name is an AttributeError in torch.ops
        packet = getattr(getattr(torch.ops, namespace), name)
        return isinstance(packet, torch._ops.OpOverloadPacket) and overload in packet.overloads()
    return False


def load_program(path: Path) -> Any:
    """The torch.export program in `path`, loaded without running anything it carries; raises DataError or Rejected."""
    import torch

    shown = _shown(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{shown} is missing: train.py writes it when training ends (prepare.export_model)") from None
    except OSError as e:
        raise DataError(f"{shown} cannot be read: {e.strerror}") from None
    clean = _clean_archive(raw, shown)
    # belt and braces: every torch.load inside torch.export.load becomes weights-only, so no pickle can run code
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        return torch.export.load(io.BytesIO(clean))
    except (RuntimeError, ValueError, KeyError, TypeError, AssertionError, AttributeError) as e:
        # the JSON passed the checks but does not describe a loadable program: damaged, not dangerous
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise DataError(f"{shown} does not load ({type(e).__name__}: {first}); rerun train.py") from None


def check_program(program: Any) -> tuple[int, int]:
    """(B, T) of the one int64 input when the graph is plain, functional tensor math; raises Rejected."""
    import torch
    from torch.export.graph_signature import InputKind, OutputKind

    for node in program.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        target = node.target
        if node.op != "call_function" or not (target is operator.getitem or isinstance(target, torch._ops.OpOverload)):
            raise Rejected(f"graph node {node.name} ({node.op} {target}) is not a call of an ATen or prims op")
        if target is operator.getitem:
            continue
        name = target._schema.name
        if target.namespace not in ("aten", "prims"):
            raise Rejected(f"op {target} is not allowed: only aten and prims ops (and getitem) run here")
        if name in FORBIDDEN_OPS:
            raise Rejected(f"forbidden op {target}: it {FORBIDDEN_OPS[name]}")
        if target._schema.is_mutable:
            raise Rejected(f"in-place op {target}: the graph must be functional (export with prepare.export_model)")
    signature = program.graph_signature
    for spec in signature.output_specs:
        if spec.kind != OutputKind.USER_OUTPUT:
            raise Rejected(f"the model changes its own state ({spec.kind.name.lower()} {spec.target}) between calls")
    inputs = [s for s in signature.input_specs if s.kind == InputKind.USER_INPUT]
    state_kinds = (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR)
    if (
        len(inputs) != 1
        or len(signature.output_specs) != 1
        or any(s.kind not in state_kinds for s in signature.input_specs if s.kind != InputKind.USER_INPUT)
    ):
        raise Rejected("model(x) must take one tensor of bytes and return one tensor of logits")
    placeholder = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == inputs[0].arg.name)
    x, out = placeholder.meta.get("val"), program.graph.output_node().args[0][0].meta.get("val")
    shape = tuple(x.shape) if isinstance(x, torch.Tensor) else ()
    if len(shape) != 2 or x.dtype != torch.int64 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise Rejected(f"the input must be one int64 tensor of a fixed shape (B, T), not {x}")
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (*shape, VOCAB_SIZE) or not out.is_floating_point():
        raise Rejected(f"the output must be float logits of shape {(*shape, VOCAB_SIZE)}, got {out}")
    return shape[0], shape[1]


@dataclass(frozen=True)
class Evaluation:
    """What the evaluator measured for one model.pt2."""

    val_bpb: float
    params: int
    batch: int
    block: int
    windows: int  # scored windows; each also had its causality checked at one random cut
    max_diff: float  # the largest logit change seen at or before a cut (0 for an exactly causal model)
    device: str
    seconds: float


def _score(model: Any, val: torch.Tensor, batch: int, block: int, device: Any) -> tuple[float, int, float]:
    """(val_bpb, windows, max_diff) of a checked program; raises Rejected when it is not causal or deterministic."""
    import torch
    import torch.nn.functional as F

    def run(x: torch.Tensor) -> torch.Tensor:
        # a fresh tensor of its own: a view into a bigger one would let as_strided read the bytes beyond it
        logits = model(x.clone().to(device))
        if tuple(logits.shape) != (batch, block, VOCAB_SIZE):
            raise Rejected(
                f"the output must be logits of shape {(batch, block, VOCAB_SIZE)}, got {tuple(logits.shape)}"
            )
        # nan compares false with any tolerance, so a model could hide a changed logit behind one: none allowed
        if not bool(torch.isfinite(logits).all()):
            raise Rejected("the logits hold nan or inf")
        return logits.float().cpu()

    # cuts and replacement bytes the model cannot predict; the process's own generator is left alone
    gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little"))
    windows = list(_eval_windows(len(val), block))
    total_nats, total_tokens, max_diff = 0.0, 0, 0.0
    for i in range(0, len(windows), batch):
        chunk = windows[i : i + batch]
        x = torch.zeros(batch, block, dtype=torch.long)  # rows past the chunk and bytes past a window are padding
        for row, (start, length) in enumerate(chunk):
            x[row, :length] = val[start : start + length]
        logits = run(x)
        if i == 0 and (again := (run(x) - logits).abs().max().item()) > CAUSAL_TOLERANCE:
            raise Rejected(f"not deterministic: the same bytes gave logits {again:.3g} apart")
        # Causality: every row keeps its bytes up to a random cut, everything after the cut and every other row
        # is replaced, and rows are shuffled; a causal model gives the same logits up to the cut. log_softmax is
        # 2-Lipschitz in the max norm, so a leak under CAUSAL_TOLERANCE is worth under 3e-4 bits per byte, while
        # honest float noise between the two passes is 0 here and far below it on GPUs.
        perm = torch.randperm(batch, generator=gen)
        probe = torch.randint(0, VOCAB_SIZE, (batch, block), generator=gen)
        cuts = [int(torch.randint(0, length, (1,), generator=gen)) for _, length in chunk]
        for row, cut in enumerate(cuts):
            probe[perm[row], : cut + 1] = x[row, : cut + 1]
        probed = run(probe)
        for row, ((start, length), cut) in enumerate(zip(chunk, cuts, strict=True)):
            diff = (probed[perm[row], : cut + 1] - logits[row, : cut + 1]).abs().amax(dim=-1)
            max_diff = max(max_diff, float(diff.max()))
            if float(diff.max()) > CAUSAL_TOLERANCE:
                at = int(diff.argmax())
                raise Rejected(f"not causal: logits at position {at} changed when bytes after it changed "
                               f"(max diff {float(diff.max()):.3g})")  # fmt: skip
            targets = val[start + 1 : start + length + 1].long()
            nats = F.cross_entropy(logits[row, :length], targets, reduction="none")  # float32, as evaluate_bpb
            total_nats += float(nats.double().sum())
            total_tokens += length
    bpb = total_nats / total_tokens / math.log(2)
    if not math.isfinite(bpb):
        raise Rejected(f"val_bpb is not finite ({bpb}): the logits hold nan or inf")
    return bpb, len(windows), max_diff


def evaluate_exported(out: Path, corpus: str | None = None) -> Evaluation:
    """Check and score out/model.pt2 on the held-out bytes; raises Rejected, or DataError for missing files."""
    import torch
    from torch.export.passes import move_to_device_pass

    t0 = time.perf_counter()
    val = load_split("val", corpus)
    program = load_program(out / MODEL_FILE)
    batch, block = check_program(program)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        program = move_to_device_pass(program, device)
    params = sum({t.data_ptr(): t.numel() for t in program.state_dict.values()}.values())  # tied weights once
    with torch.no_grad():
        bpb, windows, max_diff = _score(program.module(), val, batch, block, device)
    return Evaluation(bpb, params, batch, block, windows, max_diff, device.type, time.perf_counter() - t0)


# ---------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the task's data, or score a run's model.pt2 (--evaluate).")
    parser.add_argument("--corpus", help=f"a local text file or an http(s) URL instead of the stdlib (${CORPUS_ENV})")
    parser.add_argument("--evaluate", action="store_true", help="check and score model.pt2; last line val_bpb")
    parser.add_argument("--out", type=Path, help=f"the folder holding model.pt2 (default ${OUT_ENV}, else out/)")
    args = parser.parse_args(argv)
    try:
        if args.evaluate:
            result = evaluate_exported(args.out or output_dir(), args.corpus)
            print("---")
            print(f"model:           {_shown((args.out or output_dir()) / MODEL_FILE)}")
            print(f"params:          {result.params}")
            print(f"input_shape:     {result.batch}x{result.block}")
            print(f"scored_bytes:    {EVAL_SEGMENTS * (EVAL_TOKENS // EVAL_SEGMENTS)}")
            print(f"causal_checks:   {result.windows} (max diff {result.max_diff:.2g}, tolerance {CAUSAL_TOLERANCE:g})")
            print(f"device:          {result.device}")
            print(f"eval_seconds:    {result.seconds:.1f}")
            print(f"val_bpb: {result.val_bpb:.6f}", flush=True)
            return 0
        info = prepare(args.corpus)
    except Rejected as e:
        print(f"rejected: {e}", flush=True)
        return 1
    except DataError as e:
        print(f"error: {e.code}", file=sys.stderr)
        return 2
    print("---")
    print(f"source:        {info.description}")
    print(f"files:         {info.files}")
    print(f"train_bytes:   {info.train_bytes}")
    print(f"val_bytes:     {info.val_bytes}")
    print(f"eval_tokens:   {EVAL_TOKENS}")
    print(f"sha256:        {info.sha256}")
    print(f"path:          {_shown(info.directory)}")
    print(f"split:         {'new (val_bpb is not comparable with earlier figures)' if info.new_split else 'kept'}")
    print(f"status:        {'built' if info.built else 'verified'} in {info.seconds:.2f}s")
    if args.corpus and not os.environ.get(CORPUS_ENV):
        print(f"note:          run train.py with {CORPUS_ENV}={args.corpus} to train on this corpus")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""
Fixed data and trusted evaluation for the bundled task: a byte-level GPT scored in bits per byte.

This file is part of the task's contract and is never edited by the experiment loop; train.py is.
It owns four things:

  1. the data: by default Python-like source written by a grammar from a secret drawn once per data folder (no
     network), or a corpus the person names (a local file or a URL); split three ways: train.bin for runs, and
     held out from them val.bin (selection: the evaluator's number decides what is kept) and test.bin (the locked
     test: scored once per champion, deciding nothing)
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
    python prepare.py --evaluate --split test # the same on the locked test split (program.md's `test:`)
    AUTORESEARCH_CORPUS=input.txt python train.py   # train on the same custom corpus

The data folder is data/ next to this file, or $AUTORESEARCH_DATA:
    <corpus>/manifest.json, train.bin               what a run reads
    <corpus>/heldout/salt, val.bin, test.bin, manifest.json   what only the evaluators read (hidden: data/*/heldout)
    downloads/heldout/<file>                        a downloaded corpus, held out because it holds val.bin's bytes
Manifests are written last and every load checks sizes and hashes; `python prepare.py` rebuilds what is damaged
with the same salt, so the split does not change.

Why a generated corpus: held-out text that exists anywhere a run can read can be memorised instead of learned. A
corpus of the standard library's sources was won that way (a run read the files missing from train.bin and exported
a byte lookup table of them: 0.36 bits per byte without training), and no copy of public text (the stdlib, a
package's data, a pip cache) can be hidden everywhere: other interpreters, virtual environments and caches hold the
same bytes. The generated corpus exists only in the data folder: its language (words, how prose runs, names of
functions with their parameters, classes, modules) is drawn from the salt in heldout/, and each module from a seed
of its own, a hash of the salt, the split and its number. train.bin teaches the language; val.bin and test.bin are
new modules of it that no file outside heldout/ holds, and the salt cannot be found from train.bin (a 256-bit
secret behind SHA-256). A custom corpus (--corpus) is private only if it is kept out of a run's view: outside the
repository, named in `hidden:`.

Model contract: model(x) maps a (B, T) int64 tensor of bytes to (B, T, 256) logits; position t predicts byte t + 1
and may depend only on bytes 0..t of its own row.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import itertools
import json
import math
import operator
import os
import random
import re
import secrets
import sys
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
FORMAT_VERSION = 3                     # bump when the data layout changes, so old folders are rebuilt
GENERATOR_VERSION = 1                  # bump when the generated corpus changes, so old folders are rebuilt
GENERATED_TRAIN_BYTES = 8 * 1024 * 1024  # train.bin of the generated corpus; a few seconds to write
HELDOUT_BYTES = 256 * 1024             # val.bin and test.bin each, of the generated corpus
MAX_CUSTOM_BYTES = 1024 * 1024 * 1024  # cap on a person's own corpus (it is held in memory)
VAL_PERCENT = 5                        # share of a custom corpus held out for selection, and again for the test
FILE_SEPARATOR = b"\n\n"               # between concatenated source files
SPLITS = ("train", "val", "test")      # val: selection (evaluate:); test: the locked test (test:)
EVAL_TOKENS = 16384                    # bytes scored (see _score for why this many); 16 forward passes at the default
EVAL_SEGMENTS = 16                     # the scored bytes come from this many evenly spaced stretches of val.bin
EVAL_BATCH_SIZE = 16                   # windows per forward pass; model.pt2 is exported for this batch size
CAUSAL_PROBES = 4                      # causality probes of each scored window, each at a cut of its own (see _score)
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
    kind: str  # "generated" or "file"
    path: Path


def _corpus_spec(corpus: str | None) -> str:
    return corpus if corpus is not None else os.environ.get(CORPUS_ENV, "").strip()


def corpus_name(corpus: str | None = None) -> str:
    """The folder name under data/ of the corpus named by `corpus`, else by $AUTORESEARCH_CORPUS, else the generated
    one."""
    spec = _corpus_spec(corpus)
    if not spec:
        return f"generated-v{GENERATOR_VERSION}"
    is_url = spec.startswith(("http://", "https://"))
    where = spec if is_url else str(Path(spec).expanduser().resolve())
    stem = Path(urllib.parse.urlparse(spec).path if is_url else spec).stem
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:32] or "corpus"
    return f"{'url' if is_url else 'file'}-{stem}-{_sha256(where.encode())[:8]}"


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
    """The source named by `corpus`, else by $AUTORESEARCH_CORPUS, else the generated corpus; raises DataError."""
    spec = _corpus_spec(corpus)
    if not spec:
        settings = f"generated v{FORMAT_VERSION}.{GENERATOR_VERSION} {GENERATED_TRAIN_BYTES}/{HELDOUT_BYTES}"
        description = f"Python-like modules generated from the data folder's secret (v{GENERATOR_VERSION})"
        return Source(corpus_name(spec), description, _sha256(settings.encode()), "generated", Path())
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


class _Language:
    """What every module of one data folder shares, drawn once from its salt: the words, how prose runs from word to
    word, and the names (functions with their parameters, classes, modules, attributes, constants). A model learns
    all of it from train.bin; nothing of it exists anywhere else."""

    ONSETS = "b c d f g h j k l m n p r s t v w z br ch cl cr dr fl gr pl pr sh sk sl sp st th tr"
    NUCLEI = "a e i o u a e i o ai ea ee io ou"
    CODAS = "- - - n r s t l m x nd st rk ng"  # "-": none

    def __init__(self, rng: random.Random) -> None:
        onsets, nuclei, codas = self.ONSETS.split(), self.NUCLEI.split(), self.CODAS.replace("-", "").split(" ")
        syllables = sorted({rng.choice(onsets) + rng.choice(nuclei) + rng.choice(codas) for _ in range(160)})
        words: set[str] = set()
        while len(words) < 2400:
            words.add("".join(rng.choice(syllables) for _ in range(rng.choice((1, 1, 2, 2, 2, 3)))))
        self.words = sorted(words)
        rng.shuffle(self.words)
        self.weights = list(itertools.accumulate(1 / (rank + 1) ** 1.05 for rank in range(len(self.words))))
        # prose is a Markov chain: each word has a few likely successors of its own
        self.follow = {w: [self.word(rng) for _ in range(rng.randint(3, 10))] for w in self.words}

        def ident(parts: tuple[int, int]) -> str:
            return "_".join(self.word(rng) for _ in range(rng.randint(*parts)))

        self.modules = sorted({ident((1, 2)) for _ in range(60)})
        self.attrs = sorted({ident((1, 2)) for _ in range(300)})
        self.constants = sorted({ident((1, 3)).upper() for _ in range(120)})
        self.classes = sorted({"".join(self.word(rng).capitalize() for _ in range(rng.randint(1, 3)))
                               for _ in range(150)})  # fmt: skip
        self.functions = {ident((1, 3)): [ident((1, 2)) for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4)))]
                          for _ in range(700)}  # fmt: skip
        self.function_names = sorted(self.functions)

    def word(self, rng: random.Random) -> str:
        return rng.choices(self.words, cum_weights=self.weights)[0]

    def sentence(self, rng: random.Random) -> str:
        w = self.word(rng)
        out = [w]
        for _ in range(rng.randint(3, 13)):
            w = rng.choice(self.follow[w]) if rng.random() < 0.85 else self.word(rng)
            out.append(w)
        return " ".join(out).capitalize() + "."


class _Module:
    """One Python-like module drawn from a language and a seed of its own."""

    BINARY = (" + ", " - ", " * ", " / ", " // ", " % ", " + ", " - ")
    COMPARE = (" == ", " != ", " < ", " > ", " <= ", " >= ", " in ", " is not ")

    def __init__(self, lang: _Language, rng: random.Random) -> None:
        self.lang, self.rng, self.lines = lang, rng, []
        self.imported = [lang.function_names[i] for i in self._zipf(len(lang.function_names), 12)]

    def _zipf(self, n: int, k: int) -> list[int]:
        return sorted({min(n - 1, int(n * self.rng.random() ** 2.5)) for _ in range(k)})

    def write(self) -> str:
        lang, rng = self.lang, self.rng
        self.lines += ['"""' + " ".join(lang.sentence(rng) for _ in range(rng.randint(1, 3))) + '"""', ""]
        for name in self.imported[: rng.randint(1, 4)]:
            module = rng.choice(lang.modules)
            self.lines.append(f"from {module} import {name}" if rng.random() < 0.7 else f"import {module}")
        self.constants = [rng.choice(lang.constants) for _ in range(rng.randint(0, 4))]
        if self.constants:
            self.lines.append("")
        for name in dict.fromkeys(self.constants):
            self.lines.append(f"{name} = {self.literal()}")
        for _ in range(rng.randint(2, 6)):
            self.lines += ["", ""]
            if rng.random() < 0.3:
                self.cls()
            else:
                name = rng.choice(lang.function_names)
                self.function(0, name, lang.functions[name], [])
        return "\n".join(self.lines) + "\n"

    def literal(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.45:
            return str(int(10 ** (rng.random() * 3)))
        if roll < 0.6:
            return f"{rng.random() * 10:.{rng.randint(1, 3)}f}"
        if roll < 0.85:
            return repr(" ".join(self.lang.word(rng) for _ in range(rng.randint(1, 3))))
        return rng.choice(("None", "True", "False", "[]", "{}", "()"))

    def expr(self, scope: list[str], depth: int = 0) -> str:
        rng = self.rng
        roll = rng.random() if depth < 3 else rng.random() * 0.55
        if roll < 0.35 and scope:
            return scope[-1 - min(len(scope) - 1, int(len(scope) * rng.random() ** 2))]  # recent names more often
        if roll < 0.5:
            return self.literal() if not self.constants or rng.random() < 0.7 else rng.choice(self.constants)
        if roll < 0.55 and scope:
            return f"{rng.choice(scope)}.{rng.choice(self.lang.attrs)}"
        if roll < 0.75:
            name = rng.choice(self.imported) if rng.random() < 0.7 else rng.choice(self.lang.function_names)
            args = ", ".join(self.expr(scope, depth + 1) for _ in self.lang.functions[name])
            return f"{name}({args})"
        if roll < 0.9:
            return self.expr(scope, depth + 1) + rng.choice(self.BINARY) + self.expr(scope, depth + 1)
        if roll < 0.95:
            return "[" + ", ".join(self.expr(scope, depth + 1) for _ in range(rng.randint(0, 3))) + "]"
        return f"{rng.choice(scope) if scope else self.literal()}[{self.expr(scope, depth + 1)}]"

    def block(self, indent: int, scope: list[str], depth: int) -> None:
        rng, pad = self.rng, "    " * indent
        for _ in range(rng.randint(1, 5 if depth < 2 else 2)):
            roll = rng.random()
            if roll < 0.1:
                self.lines.append(f"{pad}# {self.lang.sentence(rng)}")
            elif roll < 0.45 or depth >= 2:
                target = "_".join(self.lang.word(rng) for _ in range(rng.randint(1, 2)))
                target = target if rng.random() < 0.6 or not scope else rng.choice(scope)
                self.lines.append(f"{pad}{target} = {self.expr(scope)}")
                scope.append(target)
            elif roll < 0.55 and scope:
                self.lines.append(f"{pad}{rng.choice(scope)} {rng.choice(('+=', '-=', '*='))} {self.expr(scope)}")
            elif roll < 0.7:
                self.lines.append(f"{pad}if {self.expr(scope, 2)}{rng.choice(self.COMPARE)}{self.expr(scope, 2)}:")
                self.block(indent + 1, scope, depth + 1)
                if rng.random() < 0.3:
                    self.lines.append(f"{pad}else:")
                    self.block(indent + 1, scope, depth + 1)
            elif roll < 0.85:
                var = self.lang.word(rng)
                self.lines.append(f"{pad}for {var} in {self.expr(scope, 1)}:")
                self.block(indent + 1, [*scope, var], depth + 1)
            else:
                self.lines.append(f"{pad}{self.expr(scope, 1) if rng.random() < 0.5 else self.expr(scope, 2)}")

    def function(self, indent: int, name: str, params: list[str], first: list[str]) -> None:
        rng, pad = self.rng, "    " * indent
        self.lines.append(f"{pad}def {name}({', '.join([*first, *params])}):")
        if rng.random() < 0.6:
            self.lines.append(f'{pad}    """{self.lang.sentence(rng)}"""')
        scope = [*first, *params]
        self.block(indent + 1, scope, 0)
        if rng.random() < 0.7:
            self.lines.append(f"{pad}    return {self.expr(scope)}")

    def cls(self) -> None:
        rng, lang = self.rng, self.lang
        base = f"({rng.choice(lang.classes)})" if rng.random() < 0.5 else ""
        self.lines.append(f"class {rng.choice(lang.classes)}{base}:")
        if rng.random() < 0.7:
            self.lines.append(f'    """{lang.sentence(rng)}"""')
            self.lines.append("")
        params = rng.choice(lang.function_names)
        self.lines.append(f"    def __init__(self, {', '.join(lang.functions[params]) or 'value'}):")
        for p in lang.functions[params] or ["value"]:
            self.lines.append(f"        self.{p} = {p}")
        for _ in range(rng.randint(1, 3)):
            self.lines.append("")
            name = rng.choice(lang.function_names)
            self.function(1, name, lang.functions[name], ["self"])


def _seeded(salt: str, *what: object) -> random.Random:
    """A generator of its own for each purpose, seeded by a hash of the salt: knowing one module's seed (a run could
    recover it from that module's text) tells nothing of the salt, so nothing of any other module."""
    return random.Random(int.from_bytes(hashlib.sha256("\0".join([salt, *map(str, what)]).encode()).digest(), "big"))


def _build_generated(salt: str) -> tuple[bytes, bytes, bytes, int]:
    lang = _Language(_seeded(salt, "language"))
    splits = []
    files = 0
    for split, size in (("train", GENERATED_TRAIN_BYTES), ("val", HELDOUT_BYTES), ("test", HELDOUT_BYTES)):
        parts, total = [], 0
        while total < size:
            text = _Module(lang, _seeded(salt, split, len(parts))).write().encode()
            parts.append(text)
            total += len(text) + len(FILE_SEPARATOR)
        files += len(parts)
        splits.append(FILE_SEPARATOR.join(parts))
    return splits[0], splits[1], splits[2], files


def _build_file(path: Path) -> tuple[bytes, bytes, bytes, int]:
    with open(path, "rb") as f:
        data = f.read(MAX_CUSTOM_BYTES)
    # val then test are the tail, each cut at a line break when there is one nearby, so no line straddles a split
    cuts = []
    for share in (2 * VAL_PERCENT, VAL_PERCENT):
        cut = len(data) - len(data) * share // 100
        newline = data.rfind(b"\n", max(0, cut - 4096), cut)
        cuts.append(newline + 1 if newline >= 0 else cut)
    return data[: cuts[0]], data[cuts[0] : cuts[1]], data[cuts[1] :], 1


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
    sha256: str  # hash of the train, val and test contents together
    train_bytes: int
    val_bytes: int
    test_bytes: int
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
    split_id = _sha256(salt.encode())[:16]  # ties train.bin to its held-out files without revealing the salt
    found = [_verified(folder, name) for folder, name in ((directory, "train"), (heldout, "val"), (heldout, "test"))]
    top, held = found[0] and found[0][0], found[1] and found[2] and found[1][0]
    built = not (top and held and top.get("key") == source.key and top.get("split") == held.get("split") == split_id)
    if built:
        if source.kind == "generated":
            train, val, test, nfiles = _build_generated(salt)
        else:
            train, val, test, nfiles = _build_file(source.path)
        if min(len(val), len(test)) < EVAL_TOKENS + 1 or len(train) < 2 * EVAL_TOKENS:
            raise DataError(f"corpus too small: {len(train)} train / {len(val)} val / {len(test)} test bytes; need "
                            f"at least {2 * EVAL_TOKENS} / {EVAL_TOKENS + 1} / {EVAL_TOKENS + 1}")  # fmt: skip
        # the top manifest goes last: its presence is what marks the folder as complete
        for stale in (directory / "manifest.json", heldout / "manifest.json"):
            with contextlib.suppress(OSError):
                stale.unlink()
        _atomic_write(heldout / "val.bin", val)
        _atomic_write(heldout / "test.bin", test)
        held = {"format": FORMAT_VERSION, "split": split_id}
        held |= {name: {"bytes": len(data), "sha256": _sha256(data)} for name, data in (("val", val), ("test", test))}
        _atomic_write(heldout / "manifest.json", (json.dumps(held, indent=2) + "\n").encode())
        _atomic_write(directory / "train.bin", train)
        top = {"format": FORMAT_VERSION, "source": source.description, "key": source.key, "split": split_id}
        top |= {"files": nfiles, "sha256": _sha256(train + val + test)}
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
        test_bytes=int(held["test"]["bytes"]),
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
    """One split (train, val or test) whole, as a 1-D uint8 tensor on the CPU; raises DataError when it is not
    prepared. A run can load only train: the others are in heldout/, which its sandbox hides."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    directory = data_root() / corpus_name(corpus)
    path = directory / "train.bin" if split == "train" else directory / "heldout" / f"{split}.bin"
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
    probes: int  # causality probes: each scored window was checked CAUSAL_PROBES times, each at a random cut
    max_diff: float  # the largest logit change seen at or before a cut (0 for an exactly causal model)
    device: str
    seconds: float


def _score(model: Any, val: torch.Tensor, batch: int, block: int, device: Any) -> tuple[float, int, float]:
    """(val_bpb, causality probes, max_diff) of a checked program; raises Rejected when it is not causal or not
    deterministic.

    How many bytes: EVAL_TOKENS = 16,384, in 16 stretches of 1,024. Every model is scored on the same bytes, so what
    could mislead a keep is the sampling error of the difference between two versions, more than that of one score.
    Measured on the bundled task (two 60-second CPU runs of the baseline, 4,096 windows of 64 bytes of val.bin):
    the per-window standard deviation of one model's bits per byte is 0.51, so one score's standard error is
    0.51 / sqrt(256 windows) = 0.032; that of the difference of the two runs' models is 0.10 / 16 = 0.006, where
    the two runs themselves differed by 0.14 (the noise of repeated runs, which the keep rule must beat anyway):
    the bytes scored add about a twentieth of the noise. Four times the bytes would halve it at four times the cost.

    How many causality probes: a probe keeps a row's bytes up to a random cut and replaces everything after it (and
    every other row); a causal model's logits up to the cut do not move. A leak of byte t + 1 into position t shows
    only when the cut falls on t, so one probe tests one position of one row. A leak that gains G bits per byte
    overall must be active on at least a share G / 8 of the scored positions (it gains at most what a position
    cost, and a model worth keeping pays under the 8 bits of a uniform guess per byte), so each probe misses it with
    probability at most 1 - G / 8, and the CAUSAL_PROBES * 256 = 1,024 probes at the default block size (more at a
    shorter one) all miss it with probability at most (1 - G / 8) ** 1024: under 3e-6 for a leak worth 0.1 bits per
    byte (the noise above), 0.16% for 0.05, 7.7% for 0.02 (0.02% when the leaky positions cost the baseline's 2.4
    bits rather than 8). A leak of a real model (attention that looks ahead, a row that reads its neighbour) shows at
    every position and fails the first probe.
    """
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
    total_nats, total_tokens, max_diff, probes = 0.0, 0, 0.0, 0
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
        for _ in range(CAUSAL_PROBES):
            perm = torch.randperm(batch, generator=gen)
            probe = torch.randint(0, VOCAB_SIZE, (batch, block), generator=gen)
            cuts = [int(torch.randint(0, length, (1,), generator=gen)) for _, length in chunk]
            for row, cut in enumerate(cuts):
                probe[perm[row], : cut + 1] = x[row, : cut + 1]
            probed = run(probe)
            for row, cut in enumerate(cuts):
                diff = (probed[perm[row], : cut + 1] - logits[row, : cut + 1]).abs().amax(dim=-1)
                max_diff = max(max_diff, float(diff.max()))
                if float(diff.max()) > CAUSAL_TOLERANCE:
                    at = int(diff.argmax())
                    raise Rejected(f"not causal: logits at position {at} changed when bytes after it changed "
                                   f"(max diff {float(diff.max()):.3g})")  # fmt: skip
            probes += len(cuts)
        for row, (start, length) in enumerate(chunk):
            targets = val[start + 1 : start + length + 1].long()
            nats = F.cross_entropy(logits[row, :length], targets, reduction="none")  # float32, as evaluate_bpb
            total_nats += float(nats.double().sum())
            total_tokens += length
    bpb = total_nats / total_tokens / math.log(2)
    if not math.isfinite(bpb):
        raise Rejected(f"val_bpb is not finite ({bpb}): the logits hold nan or inf")
    return bpb, probes, max_diff


def evaluate_exported(out: Path, corpus: str | None = None, split: str = "val") -> Evaluation:
    """Check and score out/model.pt2 on the held-out bytes of `split` (val: selection; test: the locked test);
    raises Rejected, or DataError for missing files."""
    import torch
    from torch.export.passes import move_to_device_pass

    t0 = time.perf_counter()
    if split not in SPLITS[1:]:
        raise ValueError(f"the evaluator scores a held-out split ({', '.join(SPLITS[1:])}), not {split!r}")
    val = load_split(split, corpus)
    program = load_program(out / MODEL_FILE)
    batch, block = check_program(program)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        program = move_to_device_pass(program, device)
    params = sum({t.data_ptr(): t.numel() for t in program.state_dict.values()}.values())  # tied weights once
    with torch.no_grad():
        bpb, probes, max_diff = _score(program.module(), val, batch, block, device)
    return Evaluation(bpb, params, batch, block, probes, max_diff, device.type, time.perf_counter() - t0)


# ---------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the task's data, or score a run's model.pt2 (--evaluate).")
    parser.add_argument(
        "--corpus", help=f"a local text file or an http(s) URL instead of the generated corpus (${CORPUS_ENV})"
    )
    parser.add_argument("--evaluate", action="store_true", help="check and score model.pt2; last line val_bpb")
    parser.add_argument(
        "--split", choices=SPLITS[1:], default="val", help="what --evaluate scores: val (selection) or test (locked)"
    )
    parser.add_argument("--out", type=Path, help=f"the folder holding model.pt2 (default ${OUT_ENV}, else out/)")
    args = parser.parse_args(argv)
    try:
        if args.evaluate:
            # Threads that wait for work sleep instead of spinning: on a machine other processes keep busy, spinning
            # OpenMP threads made each forward pass 50 times slower (2.3 s against 43 ms, measured here). Set before
            # torch loads its OpenMP runtime, which reads it once.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            result = evaluate_exported(args.out or output_dir(), args.corpus, args.split)
            print("---")
            print(f"split:           {args.split}")
            print(f"model:           {_shown((args.out or output_dir()) / MODEL_FILE)}")
            print(f"params:          {result.params}")
            print(f"input_shape:     {result.batch}x{result.block}")
            print(f"scored_bytes:    {EVAL_SEGMENTS * (EVAL_TOKENS // EVAL_SEGMENTS)}")
            print(f"causal_checks:   {result.probes} (max diff {result.max_diff:.2g}, tolerance {CAUSAL_TOLERANCE:g})")
            print(f"device:          {result.device}")
            print(f"eval_seconds:    {result.seconds:.1f}")
            # the same name on either split: the harness reads the metric program.md names from both commands
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
    print(f"test_bytes:    {info.test_bytes}")
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

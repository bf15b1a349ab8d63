"""The environment of every process the harness starts for model-written code, and the harness's own secrets.

What a model-written process (a run, an agent child) can see of the harness's environment: nothing but what its job
needs. A run gets PATH (the harness's interpreter first), the locale, HOME, the compute and library settings of the
machine (CUDA_*, NCCL_*, OMP_*, LD_LIBRARY_PATH, TORCH_*, HF_*, ...), the task's own AUTORESEARCH_* variables, and
the harness's markers; an agent child gets PATH, the locale and the markers. Whatever looks like a credential by its
name or its value is never passed, allowed name or not. The LLM key itself never stays in the harness's environment:
`withdraw` takes it out at start, so no child (git included) can inherit it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

OWNER = "AUTORESEARCH_REPO"  # every run and agent child carries the repository it belongs to, so a later start can
# end what a kill -9 of the harness orphaned
BUDGET = "AUTORESEARCH_BUDGET"
OUT = "AUTORESEARCH_OUT"

_SECRET_WORDS = (
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "AUTH",
    "COOKIE",
    "PRIVATE",
)
_SECRET_PREFIXES = ("ANTHROPIC_", "OPENAI_", "AWS_")
# Values that are credentials whatever the variable is called: API keys, GitHub/GitLab/Slack/Hugging Face tokens,
# AWS access key ids, PEM private keys, and URLs with a password in them (DATABASE_URL=postgres://u:pw@host).
_SECRET_VALUE = re.compile(
    r"^(sk-|gh[pousr]_|github_pat_|glpat-|xox|-----BEGIN)"
    r"|sk-ant-"
    r"|^(AKIA|ASIA)[A-Z0-9]{16}$"
    r"|^hf_[A-Za-z0-9]{30,}$"
    r"|://[^/\s:@]+:[^/\s@]+@"
)
# Names a secret word appears in by accident.
_NOT_SECRET = frozenset({"TOKENIZERS_PARALLELISM"})

# What a run may inherit: names, and prefixes of the settings GPU and ML libraries read.
_RUN_NAMES = frozenset(
    {"HOME", "LANG", "LANGUAGE", "TZ", "USER", "LOGNAME", "TMPDIR", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHASHSEED",
     "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
     "TOKENIZERS_PARALLELISM", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}
)  # fmt: skip
_RUN_PREFIXES = (
    "LC_", "CUDA_", "NVIDIA_", "NCCL_", "CUDNN_", "HIP_", "ROCR_", "ROCM_", "HSA_", "OMP_", "MKL_", "OPENBLAS_",
    "KMP_", "TORCH", "PYTORCH_", "TRITON_", "XLA_", "JAX_", "HF_", "TRANSFORMERS_", "WANDB_", "AUTORESEARCH_",
)  # fmt: skip
_AGENT_NAMES = frozenset({"LANG", "LANGUAGE", "TZ"})
_AGENT_PREFIXES = ("LC_",)


def is_secret(name: str, value: str) -> bool:
    """Whether a variable looks like a credential, by its name or by its value."""
    upper = name.upper().replace("AUTHOR", "")  # GIT_AUTHOR_NAME is an identity, not a credential
    if upper in _NOT_SECRET:
        return _SECRET_VALUE.search(value.strip()) is not None
    if upper.startswith(_SECRET_PREFIXES) or any(word in upper for word in _SECRET_WORDS):
        return True
    return _SECRET_VALUE.search(value.strip()) is not None


def _pick(names: frozenset[str], prefixes: tuple[str, ...], source: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in source.items() if (k in names or k.startswith(prefixes)) and not is_secret(k, v)}


def _path(source: Mapping[str, str]) -> str:
    """`python` in a command means the interpreter the harness runs on (its venv holds the task's packages)."""
    rest = source.get("PATH", os.defpath)
    return str(Path(sys.executable).parent) + os.pathsep + rest


def run_env(root: Path, budget: float, *, out: Path | None = None, home: str | None = None) -> dict[str, str]:
    """The environment of one evaluation run (or of the trusted evaluator) of the repository at `root`."""
    env = _pick(_RUN_NAMES, _RUN_PREFIXES, os.environ)
    env["PATH"] = _path(os.environ)
    env[OWNER] = str(root)
    env[BUDGET] = str(int(budget)) if float(budget).is_integer() else repr(float(budget))
    env["PYTHONUNBUFFERED"] = "1"  # so that the log shows a run's last words before a kill
    if out is not None:
        env[OUT] = str(out)
    if home is not None:
        env["HOME"] = home
    return env


def agent_env(root: Path, *, home: str | None = None) -> dict[str, str]:
    """The environment of an agent child: it talks only to the harness, so it needs next to nothing."""
    env = _pick(_AGENT_NAMES, _AGENT_PREFIXES, os.environ)
    env["PATH"] = _path(os.environ)
    env[OWNER] = str(root)
    env["PYTHONUNBUFFERED"] = "1"
    if home is not None:
        env["HOME"] = home
    return env


def withdraw() -> dict[str, str]:
    """Take every credential out of the harness's own environment, and return them (for the LLM client alone).

    Children inherit os.environ, so without this git and every helper would carry the key. The strings are also
    zeroed where the kernel shows them (/proc/<pid>/environ reads the process's first environment block), and the
    process is made non-dumpable, so a process of the same user cannot read that file at all.
    """
    taken = {name: value for name, value in os.environ.items() if is_secret(name, value)}
    _zero(set(taken))
    for name in taken:
        os.environ.pop(name, None)
    _non_dumpable()
    return taken


def _zero(names: set[str]) -> None:
    if not names or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        environ = ctypes.POINTER(ctypes.c_char_p).in_dll(libc, "environ")
        addresses = ctypes.cast(environ, ctypes.POINTER(ctypes.c_void_p))
    except (OSError, ValueError):
        return  # not glibc-like: the non-dumpable flag still guards /proc/<pid>/environ
    i = 0
    while (entry := environ[i]) is not None:
        name, _, value = entry.partition(b"=")
        if name.decode(errors="replace") in names and addresses[i]:
            ctypes.memset(addresses[i] + len(name) + 1, 0, len(value))
        i += 1


def _non_dumpable() -> None:
    if not sys.platform.startswith("linux"):
        return
    pr_set_dumpable = 4
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_dumpable, 0, 0, 0, 0)

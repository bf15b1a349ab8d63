"""`autoresearch doctor`: the machine as a night will use it, one checked item a line, each failure with its fix."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness import process, sandbox
from harness.config import Config
from harness.errors import ProgramError
from harness.evaluate import LOG_CAP
from harness.paths import PROGRAM
from harness.program import load

State = Literal["ok", "warn", "FAIL", "--"]
MIN_FREE = 2 * 2**30  # bytes of disk a night needs at least: logs (capped per run) and what runs keep
TORCH_TIMEOUT = 120  # seconds for torch to load inside the sandbox on a slow disk
TORCH_SCRIPT = (
    "import torch, os; c = torch.cuda.is_available(); "
    "print(torch.__version__, c, torch.cuda.device_count() if c else 0, "
    "torch.cuda.get_device_name(0) if c else '-', torch.get_num_threads(), sep='|')"
)


@dataclass(frozen=True)
class Item:
    """One line of the checklist: what was checked, what was found, and the fix when it fails."""

    state: State
    what: str
    found: str
    fix: str = ""


def examine(root: Path, secrets: Mapping[str, str]) -> list[Item]:
    """Every item of the checklist, in the order a night needs them; program.md's settings when it has one."""
    items = [_python(), _git()]
    config = Config()
    if (root / PROGRAM).is_file():
        try:
            config = load(root / PROGRAM).config
            items.append(Item("ok", "program.md", f"read ({root / PROGRAM}); 'autoresearch check' reads it in full"))
        except ProgramError as e:
            items.append(Item("FAIL", "program.md", str(e), "fix that line ('autoresearch check' lists every mistake)"))
    devices = sandbox.gpu_devices()
    sb, item = _sandbox(config, devices)
    items.append(item)
    items.append(_limits(config))
    items += _gpus(devices)
    items.append(_torch(sb, devices))
    items.append(_disk(root))
    items.append(_key(config, secrets))
    return items


def ready(items: list[Item]) -> bool:
    """Whether a night can run: no item failed."""
    return not any(item.state == "FAIL" for item in items)


def _python() -> Item:
    return Item("ok", "python", f"{platform.python_version()} at {sys.executable}")  # the install asks for 3.11+


def _git() -> Item:
    path = shutil.which("git")
    if not path:
        return Item("FAIL", "git", "not found on PATH", "install git (apt install git)")
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return Item("ok", "git", out.stdout.strip() or path)


def _sandbox(config: Config, devices: tuple[str, ...]) -> tuple[sandbox.Sandbox, Item]:
    """The sandbox as the runs' user meets it: one real sandboxed call that writes and opens the GPUs."""
    sb = sandbox.probe("auto" if config.sandbox == "required" else config.sandbox, devices=devices)
    if sb.active:
        who = f"as uid {sb.user[0]} (nobody, no groups)" if sb.user else f"as uid {os.getuid()}"
        net = "network on for runs" if config.network else "no network"
        return sb, Item("ok", "sandbox", f"bubblewrap ({sb.bwrap}) runs a run {who}, {net}")
    fix = (
        "install bubblewrap (apt install bubblewrap), or allow unprivileged user namespaces "
        "(sysctl kernel.unprivileged_userns_clone=1)"
    )
    if "cannot open" in sb.missing:
        fix = "let the runs' user open the GPU nodes: chmod 666 /dev/nvidia* (see the GPUs line)"
    if config.sandbox == "off":
        return sb, Item("warn", "sandbox", "off in program.md: runs see what your user sees", "")
    state: State = "FAIL" if config.sandbox == "required" else "warn"
    return sb, Item(state, "sandbox", sb.missing, fix)


def _limits(config: Config) -> Item:
    """The limits a run is held to: the harness's own, and the process limits it inherits."""
    names = {"open files": resource.RLIMIT_NOFILE, "processes": resource.RLIMIT_NPROC,
             "file size": resource.RLIMIT_FSIZE, "address space": resource.RLIMIT_AS}  # fmt: skip
    inherited = ", ".join(f"{name} {_limit(resource.getrlimit(r)[0])}" for name, r in names.items())
    evaluator = f"; the evaluator is killed at {config.evaluate_timeout:g} s" if config.evaluate else ""
    found = (
        f"a run is told {config.budget:g} s and killed at {config.timeout:g} s{evaluator}; a run's log is capped at "
        f"{LOG_CAP // 2**20} MiB; each process inherits: {inherited}"
    )
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < 256:
        return Item("warn", "limits", found, "raise the open files limit: ulimit -n 4096")
    return Item("ok", "limits", found)


def _limit(value: int) -> str:
    return "unlimited" if value == resource.RLIM_INFINITY else str(value)


def _gpus(devices: tuple[str, ...]) -> list[Item]:
    """The GPU device nodes as a run gets them: present, and open to the runs' user."""
    if not devices:
        return [Item("ok", "GPUs", "none (no /dev/nvidia*, no /dev/kfd): runs use the CPU")]
    items = []
    modes = [f"{d} {stat.filemode(os.stat(d).st_mode)}" for d in devices if os.path.exists(d)]
    closed = [
        d for d in devices if os.path.exists(d) and not os.path.isdir(d) and (os.stat(d).st_mode & 0o006) != 0o006
    ]
    if closed and os.geteuid() == 0:
        items.append(Item(
            "FAIL", "GPU nodes", "; ".join(modes),
            f"a root harness runs experiments as nobody, with no groups: {', '.join(closed)} must be crw-rw-rw- "
            "(chmod 666 /dev/nvidia*, or the driver option NVreg_DeviceFileMode=0666)",
        ))  # fmt: skip
    else:
        items.append(Item("ok", "GPU nodes", "; ".join(modes)))
    names = {Path(d).name for d in devices}
    if any(n.startswith("nvidia") and n[6:].isdigit() for n in names) and "nvidia-uvm" not in names:
        items.append(Item("FAIL", "GPU nodes", "/dev/nvidia-uvm is missing: CUDA cannot start",
                              "run nvidia-smi once after boot (or nvidia-modprobe -u -c=0)"))  # fmt: skip
    return items


def _torch(sb: sandbox.Sandbox, devices: tuple[str, ...]) -> Item:
    """What torch sees from inside the sandbox a run gets: its version, CUDA, the GPUs and CPU threads."""
    with tempfile.TemporaryDirectory(prefix="autoresearch-doctor-") as tmp:
        tree, log = Path(tmp) / "tree", Path(tmp) / "log"
        tree.mkdir()
        sandbox.own(sb, tree)
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": sandbox.HOME}
        view = sandbox.View(tree=tree, at=tree, cwd=tree, devices=devices)
        argv = [sys.executable, "-c", TORCH_SCRIPT]
        with log.open("wb") as sink:
            if sb.active:
                child = sandbox.spawn(sb, view, argv, env=env, stdout=sink, stderr=sink)
            else:
                child = process.spawn(argv, cwd=tree, env=env, stdout=sink, stderr=sink)
            code = child.wait(TORCH_TIMEOUT)
            if code is None:
                child.kill_tree()
        text = log.read_text(errors="replace").strip()
    where = "in the sandbox" if sb.active else "(no sandbox)"
    if code is None:
        return Item("warn", "torch", f"{where}: did not load within {TORCH_TIMEOUT} s", "")
    if code != 0:
        if "No module named 'torch'" in text:
            return Item("--", "torch", f"not installed {where}: only a task that uses it needs it")
        last = text.splitlines()[-1] if text else f"exit status {code}"
        return Item("FAIL", "torch", f"{where}: {last}", "see that error: a run that imports torch would fail alike")
    version, cuda, count, name, threads = text.splitlines()[-1].split("|")
    if cuda == "True":
        return Item("ok", "torch", f"{version} {where}: CUDA with {count} GPU(s) ({name}), {threads} CPU threads")
    if devices:
        return Item("FAIL", "torch", f"{version} {where}: CUDA not available although {len(devices)} GPU nodes exist",
                    "check the driver (nvidia-smi), /dev/nvidia-uvm, and the nodes' modes above")  # fmt: skip
    return Item("ok", "torch", f"{version} {where}: the CPU, {threads} threads")


def _disk(root: Path) -> Item:
    free = shutil.disk_usage(root).free
    found = f"{free / 2**30:.1f} GiB free at {root}"
    if free < MIN_FREE:
        return Item(
            "FAIL", "disk", found, f"free at least {MIN_FREE // 2**30} GiB: logs and the runs' outputs go there"
        )
    return Item("ok", "disk", found + " (a run's log is capped; what runs keep goes to runs/<tag>/)")


def _key(config: Config, secrets: Mapping[str, str]) -> Item:
    """The API key, when one is set: one call that costs nothing proves the key, the endpoint and the model."""
    key = secrets.get("ANTHROPIC_API_KEY", "")
    if not key:
        return Item("--", "API key", "ANTHROPIC_API_KEY is not set: nights use the offline optuna agent")
    from harness.errors import LLMError
    from harness.llm import LLMClient

    try:
        base_url = secrets.get("ANTHROPIC_BASE_URL") or None
        client = LLMClient(config.model, api_key=key, key_name="ANTHROPIC_API_KEY", base_url=base_url, patience=0)
        tokens = client.count()
    except LLMError as e:
        return Item("FAIL", "API key", str(e), "check the key (console.anthropic.com), ANTHROPIC_BASE_URL and 'model:'")
    where = secrets.get("ANTHROPIC_BASE_URL") or "api.anthropic.com"
    return Item("ok", "API key", f"accepted by {where} for {config.model} (a free token count: {tokens})")


__all__ = ["Item", "examine", "ready"]

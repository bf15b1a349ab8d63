"""What a child may see of the harness's environment, and the harness's own secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import childenv, sandbox
from harness.evaluate import evaluate
from harness.jails import Jail

# --- the environment ---------------------------------------------------------------------------------------------


def test_credentials_are_told_by_name_and_by_value() -> None:
    env = {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "LANG": "C.UTF-8",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "ANTHROPIC_API_KEY": "x",
        "ANTHROPIC_BASE_URL": "http://localhost",
        "OPENAI_ORG": "org",
        "AWS_REGION": "eu-west-1",
        "GITHUB_TOKEN": "t",
        "db_password": "p",
        "MY_SECRET": "s",
        "SSH_AUTH_SOCK": "/tmp/agent",
        "SESSION_COOKIE": "c",
        "GOOGLE_APPLICATION_CREDENTIALS": "/k.json",
        "PRIVATE_THING": "p",
        "MYSQL_PWD_PASSWD": "p",
        "INNOCENT": "sk-ant-api03-abcdef",
        "ALSO_INNOCENT": "prefix sk-ant-xyz",
        "OPENISH": "sk-proj-123",
        "GH": "ghp_abcdefghijklmnop",
        "GH2": "github_pat_11AAAA",
        "SLACK": "xoxb-123-456",
        "DATABASE_URL": "postgres://user:hunter2@db:5432/x",
        "PLAIN_URL": "https://example.com/path",
    }
    clean = {name: value for name, value in env.items() if not childenv.is_secret(name, value)}
    assert clean == {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "LANG": "C.UTF-8",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "PLAIN_URL": "https://example.com/path",
    }


def test_a_credential_among_the_names_a_run_is_given_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "t")  # a run is given HF_* (its cache, its offline switch), never a credential
    monkeypatch.setenv("HF_HOME", "/data/hf")
    monkeypatch.setenv("WANDB_MODE", "sk-ant-api03-abcdef")  # a key under an innocent name is told by its value
    env = childenv.run_env(Path("/repo"), 60)
    assert "HF_TOKEN" not in env
    assert "WANDB_MODE" not in env
    assert env["HF_HOME"] == "/data/hf"


def test_a_run_sees_no_credentials_of_the_harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "ANTHROPIC_API_KEY": "sk-ant-api03-secret-one",
        "GITHUB_TOKEN": "ghp_secrettwo",
        "DB_PASSWORD": "secret-three",
        "MY_SECRET": "secret-four",
        "AWS_SECRET_ACCESS_KEY": "secret-five",
        "HARMLESS_LOOKING": "sk-ant-api03-secret-six",
        "HF_TOKEN": "hf_" + "x" * 34,
        "CUDA_VISIBLE_DEVICES": "3",
        "TOKENIZERS_PARALLELISM": "false",
        "SOME_UNRELATED_SETTING": "1",
    }.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "run.py").write_text(
        "import subprocess\n"
        "open('env.txt', 'wb').write(subprocess.run(['env'], capture_output=True).stdout)\n"
        "print('val_bpb: 1.0')\n"
    )
    result = evaluate(
        tmp_path,
        f"{sys.executable} run.py",
        metric="val_bpb",
        timeout=20,
        log=tmp_path / "run.log",
        jail=Jail(sandbox.probe("off"), None, childenv.run_env(tmp_path, 7), tmp_path),
    )
    assert result.outcome == "ok"
    dump = (tmp_path / "env.txt").read_text()
    for name in ("ANTHROPIC_API_KEY", "GITHUB_TOKEN", "DB_PASSWORD", "MY_SECRET", "AWS_SECRET_ACCESS_KEY", "HF_TOKEN"):
        assert name not in dump
    assert "secret" not in dump
    assert "HARMLESS_LOOKING" not in dump
    assert "SOME_UNRELATED_SETTING" not in dump  # built from an allowlist, not from what the harness happened to have
    assert f"PATH={Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}\n" in dump
    assert "AUTORESEARCH_BUDGET=7\n" in dump
    assert f"AUTORESEARCH_REPO={tmp_path}\n" in dump
    assert "CUDA_VISIBLE_DEVICES=3\n" in dump
    assert "TOKENIZERS_PARALLELISM=false\n" in dump


def test_an_agent_child_gets_next_to_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-secret")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    env = childenv.agent_env(tmp_path)
    assert set(env) <= {"PATH", "LANG", "LANGUAGE", "TZ", "PYTHONUNBUFFERED", childenv.OWNER} | {
        k for k in env if k.startswith("LC_")
    }
    assert env[childenv.OWNER] == str(tmp_path)


def test_withdraw_takes_the_key_out_of_the_process_and_its_proc_file(tmp_path: Path) -> None:
    # A fresh interpreter, so the test's own environment is left alone; it reads its own /proc file afterwards.
    code = (
        "import os, json\n"
        "from harness import childenv\n"
        "taken = childenv.withdraw()\n"
        "raw = open('/proc/self/environ', 'rb').read() if os.path.exists('/proc/self/environ') else b''\n"
        "print(json.dumps({'taken': sorted(taken), 'left': 'ANTHROPIC_API_KEY' in os.environ,\n"
        "                  'proc': raw.count(b'sk-ant-api03-withdrawn'), 'value': taken.get('ANTHROPIC_API_KEY')}))\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "GIT_AUTHOR_NAME": "Ada",
        "ANTHROPIC_API_KEY": "sk-ant-api03-withdrawn",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report["taken"] == ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"]
    assert report["value"] == "sk-ant-api03-withdrawn"  # handed to the caller (the LLM client) ...
    assert report["left"] is False  # ... and gone from what children inherit
    assert report["proc"] == 0  # and from what the kernel shows of the process

"""The `autoresearch` command: parses, delegates to the library, prints."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harness.agents import KINDS
from harness.errors import HarnessError
from harness.executors import EXECUTORS

if TYPE_CHECKING:  # the modules behind a command load when it runs, so `--help` and `log` start fast
    from harness.runner import Ending
    from harness.session import Options
    from harness.status import Screen

Start = Callable[["Options", "Screen", dict[str, str]], "Ending"]


def _root() -> Path:
    """The repository the command is run in, from its top or any folder below, as git finds it."""
    from harness.paths import find_root

    return find_root(Path.cwd())


def _default_tag() -> str:
    return time.strftime("%b%d").lower()


class _Group(click.Group):
    """A person's mistake (HarnessError) is one line on stderr and its exit status; a bug is a crash log (traceback
    and versions), a one-line pointer to it, and exit status 3."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except HarnessError as e:
            click.echo(f"autoresearch: {e}", err=True)
            ctx.exit(e.exit_code)
        except (click.exceptions.Exit, click.ClickException, KeyboardInterrupt):
            raise
        except Exception as e:  # a bug: never a bare traceback at 3 am, always a log someone can read
            from harness import crash
            from harness.paths import Layout

            log = crash.write(Layout(_root()).crash_log(), e)
            click.echo(f"autoresearch: internal error ({type(e).__name__}: {e}); the traceback is in {log}", err=True)
            ctx.exit(3)


@click.group(cls=_Group)
@click.version_option(package_name="autoresearch")
def main() -> None:
    """A git-native harness that lets a coding agent research one file and one metric all night."""


def _night_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options every night takes (run and hyper): the tag, the limits, and what overrides program.md."""
    options = [
        click.option(
            "--tag", default=_default_tag, show_default="today, e.g. nov23", help="Branch autoresearch/<tag>."
        ),
        click.option("--budget", type=float, default=None, help="Seconds each run is told it has."),
        click.option("--timeout", type=float, default=None, help="Hard wall-clock limit of each run, in seconds."),
        click.option("--model", default=None, help="Claude model of the LLM agent."),
        click.option("--max-cost-usd", type=float, default=None, help="LLM spend cap of the night (the tag)."),
        click.option("--max-experiments", type=int, default=None, help="Stop after this many experiments."),
        click.option("--hours", type=float, default=None, help="Stop starting experiments after this many hours."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _night(tag: str, limits: dict[str, Any], start: Start, agent: str | None = None) -> None:
    """Run a night through `start(options, screen, secrets)`, on the live display, and print how it ended."""
    from harness import childenv
    from harness.display import Display
    from harness.session import Options

    # The credentials leave the environment first, so that no child of the harness (git included) inherits them.
    secrets = childenv.withdraw()
    if agent is None:
        agent = "llm" if secrets.get("ANTHROPIC_API_KEY") else "optuna"
        if agent == "optuna":
            click.echo("no ANTHROPIC_API_KEY set: using the offline optuna agent (--agent llm to change)", err=True)
    overrides = {k: limits.pop(k) for k in ("budget", "timeout", "model", "max_cost_usd", "workers", "executor")
                 if k in limits}  # fmt: skip
    options = Options(tag=tag, agent=agent, overrides=overrides, **limits)
    display = Display(sys.stdout)
    try:
        ending = start(options, display, secrets)
    finally:
        display.close()
    display.say(f"{ending.reason}; see: autoresearch log --tag {tag}")
    if ending.exit_code:
        sys.exit(ending.exit_code)


@main.command()
@_night_options
@click.option("--agent", default=None, help=f"{KINDS}. [default: llm with a key, else optuna]")
@click.option("--workers", default=None, help="Evaluations in flight at once, or auto (one per visible GPU).")
@click.option("--executor", type=click.Choice(list(EXECUTORS)), default=None, help="Where evaluations run.")
def run(tag: str, agent: str | None, workers: str | None, **limits: Any) -> None:
    """Run the experiment loop on branch autoresearch/<tag> until stopped.

    Example: autoresearch run --tag nov23 --max-experiments 20 --workers auto
    """
    from harness import runner
    from harness.agents import build_agent

    limits["workers"] = int(workers) if workers and workers.isdigit() else workers  # a number, or auto

    def start(options: Options, screen: Screen, secrets: dict[str, str]) -> Ending:
        return runner.run(_root(), options, screen=screen, make_agent=build_agent, secrets=secrets)

    _night(tag, limits, start, agent)


@main.command()
@_night_options
@click.option("--generations", type=click.IntRange(min=1), default=None, help="Stop after this many rewrites.")
@click.option("--window", type=click.IntRange(min=1), default=10, show_default=True, help="Experiments per window.")
def hyper(tag: str, generations: int | None, window: int, **limits: Any) -> None:
    """HyperAgent mode: the loop of `run`, and every WINDOW experiments agent.py rewrites itself; a candidate replaces
    it only after the scope, compile, contract, import, signature, smoke and probation gates.

    Example: autoresearch hyper --tag nov23 --generations 5 --window 10
    """
    from harness.hyper import mode as hyper_

    plan = hyper_.Plan(window=window, generations=generations)

    def start(options: Options, screen: Screen, secrets: dict[str, str]) -> Ending:
        return hyper_.run(_root(), options, plan, screen=screen, secrets=secrets)

    _night(tag, limits, start, agent="llm")


@main.command()
@click.option("--no-run", is_flag=True, help="Only read program.md against the repository; run nothing.")
def check(no_run: bool) -> None:
    """Read program.md against the repository (every key, search name and file it names), then run the baseline
    once in the sandbox with the evaluator, printing what a night would record; creates no branch, ref or ledger row.

    Example: autoresearch check
    """
    from harness import check as check_

    root = _root()
    program, found = check_.check(root)
    click.echo(f"program.md: no mistake found against {root}")
    for line in found.facts:
        click.echo(f"  {line}")
    for line in found.warnings:
        click.echo(f"warning: {line}")
    if no_run:
        return
    from harness import dryrun

    click.echo(f"running the baseline ({program.config.run}) ...")
    trial = dryrun.trial(root, program)
    for line in dryrun.describe(trial, program, root):
        click.echo(line)
    if trial.failure:
        sys.exit(1)


@main.command()
def doctor() -> None:
    """Check this machine for a night: Python, git, the sandbox as the runs' user, the limits in force, the GPUs and
    torch as a run sees them, free disk, and the API key when one is set (one free call). Exit 0 when a night can run.

    Example: autoresearch doctor
    """
    from harness import childenv
    from harness import doctor as doctor_

    root = _root()
    items = doctor_.examine(root, childenv.withdraw())
    click.echo(f"autoresearch doctor: {root}")
    for item in items:
        click.echo(f"  {item.state:<4}  {item.what}: {item.found}")
        if item.fix:
            click.echo(f"        fix: {item.fix}")
    if not doctor_.ready(items):
        click.echo("a night cannot run here until each FAIL above is fixed")
        sys.exit(1)
    click.echo("a night can run here")


@main.command()
def stop() -> None:
    """Ask the running loop to stop after its current experiment.

    Example: autoresearch stop
    """
    from harness.lock import request_stop
    from harness.paths import Layout

    layout = Layout(_root())
    pid = request_stop(layout.lock, layout.stop_request)
    click.echo(f"asked the loop (pid {pid}) to stop after its current experiment")


@main.command()
@click.option("--tag", default=None, help="The night to show. [default: the latest]")
@click.option("--since", default=None, help="Only rows after an ISO time or a duration ago (12h, 30m).")
@click.option("--limit", type=int, default=50, show_default=True, help="Rows in the table (the summary counts all).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--csv", "as_csv", is_flag=True, help="One CSV row per experiment, each parameter a column.")
def log(tag: str | None, since: str | None, limit: int, as_json: bool, as_csv: bool) -> None:
    """Show the night: a table of experiments and a summary.

    Example: autoresearch log --tag nov23 (or --csv > nov23.csv)
    """
    if as_csv:
        from harness import csvlog, nights

        click.echo(csvlog.night_csv(nights.place(_root()), tag), nl=False)
        return
    from harness import review

    click.echo(review.render_log(_root(), tag=tag, since=since, limit=limit, as_json=as_json), nl=False)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def nights(as_json: bool) -> None:
    """List the nights of this repository: state, baseline to best, experiments, keep rate, crashes, cost.

    Example: autoresearch nights
    """
    import json

    from harness import nights as nights_

    lines = nights_.lines(nights_.place(_root()))
    if as_json:
        click.echo(json.dumps([n.to_json() for n in lines], indent=2))
    else:
        click.echo(nights_.table(lines), nl=False)


@main.command()
@click.argument("experiment", type=int)
@click.option("--tag", default=None, help="The night. [default: the latest]")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(experiment: int, tag: str | None, as_json: bool) -> None:
    """Show one experiment: its verdict, measurements, parameters, diff against its parent, and its logs.

    Example: autoresearch show 12 --tag nov23
    """
    from harness import detail

    click.echo(detail.show_repo(_root(), tag, experiment, as_json=as_json), nl=False)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (not loopback: a token).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0 picks a free port.")
def serve(host: str, port: int) -> None:
    """Serve the morning review in a browser: the nights, each night live, each experiment, two nights compared.
    Read-only; on an address other than loopback it asks for the token in the URL it prints.

    Example: autoresearch serve --port 8000
    """
    app = _web("app")

    def announce(url: str) -> None:
        click.echo(f"serving the review at {url} (Ctrl-C stops)", err=False)
        sys.stdout.flush()

    app.serve(_root(), host, port, announce)


def _web(module: str) -> Any:
    """A module of harness.web; a clear line when the optional web extra is not installed."""
    import importlib

    try:
        return importlib.import_module(f"harness.web.{module}")
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("starlette", "uvicorn", "jinja2"):
            from harness.errors import HarnessError

            raise HarnessError(f"the web review needs {e.name}: pip install 'autoresearch[web]'") from None
        raise


@main.command()
def status() -> None:
    """Say what the running loop is doing now.

    Example: autoresearch status
    """
    from harness import status as status_

    click.echo(status_.describe_repo(_root()))


@main.command()
@click.option("--tag", default=None, help="The night to report. [default: the latest]")
@click.option("--out", type=click.Path(path_type=Path), default=Path("report"), show_default=True)
@click.option("--html", "as_html", is_flag=True, help="The pages of 'autoresearch serve' as static files instead.")
def report(tag: str | None, out: Path, as_html: bool) -> None:
    """Write report.md and progress.png for a night; with --html, the review's pages as static files (every night,
    or the one --tag names), readable without a server.

    Example: autoresearch report --tag nov23 --out report/ (or --html --out site/)
    """
    if as_html:
        path = _web("export").write_site(_root(), out, [tag] if tag else None)
        click.echo(f"wrote {path}")
        return
    from harness import report as report_

    path = report_.report_repo(_root(), out, tag=tag)
    click.echo(f"wrote {path} and {path.parent / 'progress.png'}")


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--mutable", required=True, help="The one file experiments may change, e.g. solve.py.")
@click.option("--run", "run_", required=True, help="The evaluation command, e.g. 'python solve.py'.")
@click.option("--metric", required=True, help="The name in the run's last '<metric>: <float>' line.")
@click.option("--direction", type=click.Choice(["minimize", "maximize"]), default="minimize", show_default=True)
@click.option("--budget", type=float, default=300, show_default=True, help="Seconds each run is told it has.")
@click.option("--timeout", type=float, default=None, help="Hard limit per run. [default: budget + 60 s grace]")
@click.option("--evaluate", default="", help="Your trusted evaluator, e.g. 'python score.py' (its files protected).")
@click.option("--hidden", multiple=True, help="Data only the evaluator sees, e.g. data/test/ (repeatable).")
@click.option("--force", is_flag=True, help="Overwrite program.md and agent.py if they exist.")
def init(
    directory: Path,
    mutable: str,
    run_: str,
    metric: str,
    direction: str,
    budget: float,
    timeout: float | None,
    evaluate: str,
    hidden: tuple[str, ...],
    force: bool,
) -> None:
    """Make another git repository ready for the loop: program.md, .gitignore entries, agent.py.

    Example: autoresearch init ../solver --mutable solve.py --run "python solve.py" --metric score --direction maximize
    """
    from harness import scaffold
    from harness.paths import find_root

    directory = find_root(directory) if directory.is_dir() else directory  # a folder inside it names the repository
    written = scaffold.init(
        directory, mutable=mutable, run=run_, metric=metric, direction=direction, budget=budget,
        timeout=timeout, force=force, agent_source=scaffold.seed_agent(), evaluate=evaluate, hidden=hidden,
    )  # fmt: skip
    for path in written:
        click.echo(f"wrote {path}")
    for guess in scaffold.guesses(directory / mutable):
        range_ = f"searched {scaffold.flow(guess.space)}" if guess.space else "not searched"
        click.echo(f"  {guess.name} = {guess.value}: {range_}; {guess.why}")
    click.echo(
        f"next: read the guesses in {directory / 'program.md'} (each has its reason), commit, then "
        "'autoresearch check' and 'autoresearch run --tag <name>' there"
    )

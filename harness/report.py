"""`autoresearch report`: report.md and progress.png for a night, readable without the tool."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from harness import lockedtest
from harness.ledger import Experiment, Row
from harness.paths import branch
from harness.review import Night, figures, num, repository, signed, summarize
from harness.text import flat, short


def write_report(rows: Iterable[Row] | Path, out_dir: Path, tag: str | None = None,
                 metric_name: str = "metric", direction: str | None = None) -> Path:  # fmt: skip
    """Write out_dir/report.md and out_dir/progress.png for a night; returns the path of report.md."""
    night = summarize(rows, tag, metric=metric_name, direction=direction)
    out_dir.mkdir(parents=True, exist_ok=True)
    from harness.plot import progress_png  # matplotlib only for the report

    progress_png(night, out_dir / "progress.png")
    path = out_dir / "report.md"
    path.write_text(_markdown(night, "progress.png"), encoding="utf-8")
    return path


def report_repo(root: Path, out_dir: Path, tag: str | None = None) -> Path:
    """What `autoresearch report` writes for the repository at `root`; returns the path of report.md."""
    ledger, metric, direction = repository(root)
    return write_report(ledger, out_dir, tag, metric, direction)


def _markdown(night: Night, image: str) -> str:
    m, pct = night.metric, f" ({night.change_pct:+.1f}%)" if night.change_pct is not None else ""
    out = [f"# autoresearch: night `{night.tag}`", "", f"{m}: baseline {num(night.baseline)} → best "
           f"{num(night.best)}{pct}", "", f"![{m} over the experiments of {night.tag}]({image})", "",
           "## Summary", "", "| | |", "|---|---|", *(f"| {k} | {_pipes(v)} |" for k, v in figures(night))]  # fmt: skip
    out += ["", "## Kept experiments", "", f"Kept commits are on branch `{branch(night.tag)}`; every other commit "
            "stays reachable (`git log --all`, `git show <commit>`).", "",
            f"| id | commit | {m} | delta | description |", "|---:|---|---:|---:|---|"]  # fmt: skip
    out += [f"| {r.id} | `{short(r.commit)}` | {num(r.metric)} | {signed(r.delta)} | {cell(flat(r.description))} |"
            for r in night.rows if r.status == "keep"]  # fmt: skip
    out += ["", "## Steer events", ""]
    out += [f"- {s.time.replace('T', ' ')}, after experiment {'-' if s.after is None else s.after}: "
            f"{literal(s.summary())}"
            for s in night.steers] or ["None: program.md did not change during the night."]  # fmt: skip
    out += _generations(night)
    out += _locked(night)
    hyper = bool(night.generations)  # a HyperAgent night: each experiment says which agent proposed it
    sources = [_source(r) for r in night.rows]
    hybrid = any(sources)  # a hybrid night: which experiments the optimizer proposed and which the LLM
    if hybrid:
        said = (
            f"{sources.count('optimizer')} experiments came from the optimizer and {sources.count('llm')} from the LLM"
        )
        out += ["", "## Optimizer and LLM", "", said + " (an override, its reason in the ledger's `extra.why`)."]
    out += ["", "## Every experiment", "", "Kept ones in bold.", ""]
    heads = (" agent |" if hyper else "") + (" from |" if hybrid else "")
    out += [f"| id | status | {m} | delta | seconds | commit |{heads} description |",
            "|---:|---|---:|---:|---:|---|" + "---|" * (hyper + hybrid) + "---|"]  # fmt: skip
    for r, source in zip(night.rows, sources, strict=True):
        cells = [str(r.id), r.status, num(r.metric), signed(r.delta), f"{r.seconds:.1f}", f"`{short(r.commit)}`"]
        cells += [night.proposer(r)] if hyper else []
        cells += [source or "-"] if hybrid else []
        bold = "**" if r.status == "keep" else ""
        out.append("| " + " | ".join(f"{bold}{c}{bold}" for c in cells) + f" | {cell(flat(r.description))} |")
    return "\n".join(out) + "\n"


def _locked(night: Night) -> list[str]:
    """Each champion's selection number beside its locked test (program.md's `test:`), which decided nothing."""
    if not night.tests:
        return []
    over = lockedtest.summary(night.tests)
    out = ["", "## Selection against the locked test", "", "Each champion (the baseline and every keep) scored once on "
           "a split that no decision and no agent saw. A gain on the selection split that the locked test does not "
           "share is the search fitting the selection split.", "", f"Over the night: {over}.", "",
           "| champion | commit | selection | locked test | gap |", "|---:|---|---:|---:|---:|"]  # fmt: skip
    for t, (exp_id, commit, selection, test, gap) in zip(night.tests, lockedtest.rows(night.tests), strict=True):
        shown = test if t.metric is not None else cell(test)  # a failure's reason quotes the test's output
        out.append(f"| {exp_id} | `{commit}` | {selection} | {shown} | {gap} |")
    return out


def _generations(night: Night) -> list[str]:
    """The HyperAgent generations: each rewrite of agent.py, where it stopped, and what probation said."""
    if not night.generations:
        return []
    out = ["", "## Generations (HyperAgent)", "", f"Accepted agents are commits on `{branch(night.tag)}`; rejected "
           f"ones stay under `refs/autoresearch/{night.tag}/agents/<n>`.", "",
           "| generation | after experiment | status | stage | agent | commit | pairs won (candidate-champion) | why |",
           "|---:|---:|---|---|---|---|---|---|"]  # fmt: skip
    for g in night.generations:
        won = f"{g.scores['candidate']}-{g.scores.get('champion', 0)}" if "candidate" in g.scores else ""
        after = "-" if g.after is None else str(g.after)
        why = g.error or g.description
        out.append(f"| {g.generation} | {after} | {g.status} | {g.stage} | `{g.agent_sha}` | `{short(g.commit)}` | "
                   f"{won} | {cell(flat(why))} |")  # fmt: skip
    return out


def _pipes(text: str) -> str:
    """The harness's own text (figures, names) fit for a table cell."""
    return text.replace("|", "\\|")


def cell(text: str) -> str:
    """Text fit for a Markdown table cell: a literal (see `literal`), its pipes escaped so the row stays whole."""
    return _pipes(literal(text))


def literal(text: str) -> str:
    """Text from outside (a model's description, a reason, a log's last words) as a Markdown code span, on one
    line: whatever it holds (a link, an image, HTML, an address a renderer would make a link of) is shown as the
    characters it is and never fetched or followed. The fence is one backtick longer than the longest run of them
    inside, and a space pads each side (CommonMark strips one from each)."""
    line = flat(text)
    if not line:
        return ""
    fence = "`" * (1 + max((len(run) for run in re.findall("`+", line)), default=0))
    return f"{fence} {line} {fence}"


def _source(row: Experiment) -> str:
    """Who proposed an experiment of a hybrid night: "optimizer" or "llm"; "" in any other night."""
    source = row.extra.get("source") if isinstance(row.extra, dict) else None
    return source if source in ("optimizer", "llm") else ""

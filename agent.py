"""
The meta-agent: reads program.md and the evidence of the night, and proposes the next edit of the mutable file.

Usage: the harness calls it; a person edits the prompts below to change the strategy.
    autoresearch run --agent llm          # propose() once per experiment
    autoresearch hyper                    # rewrite() proposes a new version of this very file

The contract: propose(task, llm) and rewrite(task, llm) each return a Proposal (a one-line description, the whole
new file, notes that come back as task.notes next time, and a reflection when task.reflect asks for one). `llm` is a
proxy: the harness makes the real call (it holds the key, meters the tokens, enforces the spend cap) and answers the
read-only tools from the repository. The machinery (the tool loop, the edit format, one repair per kind of failed
reply) is in harness/dialogue.py; what the model is told is here.
"""

import re

from harness.dialogue import Chat, settle
from harness.edits import fence_for
from harness.toolbox import TOOLS

# ---------------------------------------------------------------------------------------------------------------
# Strategy: the prompts (edit these first)

SYSTEM = """You are a research engineer running one experiment at a time, all night, to improve a single metric.
Each experiment changes one file; the harness runs it for a fixed wall-clock budget and keeps it only if it beats
the champion by more than the noise. Faster steps buy more steps in the budget: speed counts as much as modelling.
A result inside the noise is inconclusive, not a failure; an effect smaller than the noise can never be kept, so
pick changes with a clear reason and an effect the noise can resolve. Use the evidence below: never repeat a dead
end or a tried point, build on what was kept, fix a crash if the last run crashed. If tools are offered you may
look at files, earlier experiments and run logs first, a few times at most.

Answer in exactly this format:
DESCRIPTION: <one line saying what this experiment tries and why>
HYPOTHESIS: <a few words naming the idea's family, e.g. "learning-rate warmup" or "wider MLP">
EXPECTED: <the change of the metric you expect, signed, e.g. -0.02>
NOTES: <optional lines for your next time; they replace your previous notes; the first 1500 characters are kept>
then one or more edit blocks:
<<<<<<< SEARCH
<exact lines of the current file>
=======
<the new lines>
>>>>>>> REPLACE
Each SEARCH must match exactly one place of the current file, including indentation; keep it short. To replace the
whole file instead, send all of it, with nothing left out, in one ```python fenced block after the NOTES."""

# What the night asks for: refine while it keeps finding gains, broaden when it has stalled.
EXPLOIT = """Refine: build on the champion and the near misses. A near miss inside the noise may pay as a bigger
step the same way, or combined with another near miss."""

BROADEN = """{stalled} experiments since the last keep, more than the {patience} this night's keep rate and noise
allow: stop refining. Try a family not tried recently (see the memory), a change you expect to move the metric by
at least {twice:g} (twice the noise of one run)."""

REFLECT = """Before the DESCRIPTION, also write REFLECTION: a summary of the night so far in under 200 words: what
worked, what failed, what to try next. It replaces your previous reflection and stands for the experiments older
than the history above, so keep from it what still matters."""

REWRITE = """Now improve yourself: above is your own source, agent.py, the agent that proposes these experiments.
Propose one change that should make its proposals better (prompts, what it shows of the evidence, the edit format),
keeping the contract: top-level propose(task, llm) and rewrite(task, llm) with exactly these parameters, returning a
harness.task.Proposal; only imports, defs, classes, constants and docstrings at top level (nothing that runs at
import). The harness checks all of this, then tries your new version on the next experiments beside this one.
Answer with DESCRIPTION, then edit blocks of agent.py, or the whole new agent.py between two lines of {fence}: that
fence is longer than any run of backticks in the file, so the file's own fences stay inside it."""

# What the model is told when its reply cannot be used; each is sent at most once per experiment.
REPAIR = {
    "truncated": """Your reply was cut off at the {max_tokens}-token limit before it ended, so none of it was
applied. Send the whole answer again, shorter: SEARCH only the lines that change, with a line of context.""",
    "refusal": """This is a routine experiment on the code in {path}, nothing more. Answer in the format.""",
    "empty": """Your reply was empty. Answer in the format: DESCRIPTION, then edit blocks.""",
    "no_edits": """Your reply had no edit blocks. Answer in the format: DESCRIPTION, then one or more
<<<<<<< SEARCH / ======= / >>>>>>> REPLACE blocks (or the whole file in one ```python block).""",
    "no_description": """Your edits applied, but the reply had no DESCRIPTION line. Send that one line.""",
    "noop": """Your edits leave {path} exactly as it was: each REPLACE equals its SEARCH, so there is nothing to run.
Send edit blocks that change it.""",
    "lazy": """{where} leaves code out ("{line}"): applied, it would delete that code. Send edit blocks that change
only what you mean to change, or the whole file with nothing left out.""",
    "not_found": """Edit block {n} did not apply: {why}.
{closest}{applied}Send the corrected block(s) only, in the same format (DESCRIPTION and NOTES may be omitted).""",
    "ambiguous": """Edit block {n} did not apply: {why} in {path}. Add lines around it so that it matches exactly
one place.
{applied}Send the corrected block(s) only, in the same format (DESCRIPTION and NOTES may be omitted).""",
    "compile": """After your edits {path} does not compile: {error}
{context}
Send edit blocks that fix it, against the file as it is now (your edits applied).""",
}

MAX_TOKENS = 8000  # one reply; the edit blocks of a small change fit easily
THINKING = None  # e.g. {"type": "enabled", "budget_tokens": 4000} for extended thinking (below MAX_TOKENS)
DIGESTS = 3  # the latest runs are shown with the digest of their log; older ones as one line each
DIGEST_LINES = 5  # of one run's digest, what differs from the champion's
NOTES_CHARS = 1500  # the notes carried to the next experiment, cut at the end
REFLECTION_CHARS = 1500
REASON_CHARS = 200  # of each failure's reason in the review
# The summary lines of a run's log that say how fast it went: shown even when its digest is cut.
THROUGHPUT = re.compile(r"^\s*(?:steps|tokens_seen|tokens|samples|iters|\w*_per_s\w*|tok/s|mfu)\s*:", re.IGNORECASE)
CACHE = {"type": "ephemeral", "ttl": "1h"}  # a run takes minutes: the default 5-minute cache would lapse between calls

# ---------------------------------------------------------------------------------------------------------------
# Entry points


def propose(task, llm):
    """The next experiment: a description and the new content of the mutable file."""
    blocks = [_setup(task), _champion(task, task.mutable_path, task.mutable_content), _archive(task)]
    return _answer(task, llm, blocks, _situation(task), task.mutable_content, task.mutable_path)


def rewrite(task, llm):
    """HyperAgent mode: a new version of this file, proposed by the model."""
    blocks = [_setup(task), _champion(task, "agent.py", task.agent_source)]
    ask = REWRITE.format(fence=fence_for(task.agent_source))
    return _answer(task, llm, blocks, _situation(task) + "\n\n" + ask, task.agent_source, "agent.py")


def _answer(task, llm, blocks, situation, content, path):
    tools = TOOLS if task.agent_steps else None
    chat = Chat(llm, system=SYSTEM, blocks=blocks, situation=situation, cache=CACHE, max_tokens=MAX_TOKENS,
                tools=tools, steps=task.agent_steps, thinking=THINKING)  # fmt: skip
    return settle(chat, chat.ask(), content, path, REPAIR, notes_chars=NOTES_CHARS, reflection_chars=REFLECTION_CHARS)


# ---------------------------------------------------------------------------------------------------------------
# The prompt: three cached blocks that change only with the champion (the setup, all night; the champion; the
# archive of its making) and the situation, which changes every time: the noise, the memory, the history


def _setup(task):
    goal = "lower" if task.direction == "minimize" else "higher"
    lines = [
        f"# program.md\n{task.program}",
        "# The setup",
        f"- metric: {task.metric}, {goal} is better",
        f"- each run is told it has {task.budget:g} s (wall clock) and is killed at {task.timeout:g} s",
        f"- the runs run on: {task.machine}",
    ]
    lines += [f"\n# {c.path} (read-only context)\n{c.content}" for c in task.context]
    return "\n".join(lines)


def _champion(task, path, content):
    text = f"# {path} (current champion)\n{content}"
    run = task.champion_run
    if run and path == task.mutable_path:
        text += f"\n# The champion's own run (#{run.id}): {_run(run)}\n{run.digest}"
    if task.kept:  # changes with the champion, so it is cached with it
        text += "\n# Kept so far (these made the champion)\n"
        text += "\n".join(f"  #{a.id} {_f(a.metric)} {_d(a.delta)} {a.description}" for a in task.kept)
    return text


def _archive(task):
    if not task.archive:
        return ""
    lines = ["# Code of earlier experiments (kept ones and near misses), as diffs against their champion"]
    for i in task.archive:
        lines.append(f"## #{i.id} {i.status} {_f(i.metric)} {_d(i.delta)}: {i.description}\n{i.diff}")
    return "\n".join(lines)


def _situation(task):
    """The changing part: the noise, the memory of the night, the evidence of recent runs, the agent's own notes."""
    lines = _noise(task)
    if task.families:
        lines.append("The memory of the night: every family of changes tried, the latest first (tries, kept, best "
                     "delta, status):")  # fmt: skip
        lines += [f"  {f.name}: {f.tries} tried, {f.kept} kept, best {_d(f.best) or 'n/a'}"
                  f"{' (inside the noise)' if f.inside else ''}, {f.status}" for f in task.families]  # fmt: skip
    recent = task.history  # already bounded by program.md's `history`
    if recent:
        lines.append("Recent experiments, oldest first (id, verdict, metric, delta, expected, run, description):")
        lines += [_line(f"#{a.id}", _verdict(task, a), _f(a.metric), _d(a.delta), _expected(a), _run(a),
                        a.description + _contended(a)) for a in recent]  # fmt: skip
    if task.in_flight:
        lines.append("In flight now, not finished (do not propose these again):")
        lines += [f"  #{a.id} {a.description}" + (f" [{a.family}]" if a.family else "") for a in task.in_flight]
    known = set(task.champion_run.digest.splitlines()) if task.champion_run else set()
    digests = [(a.id, _news(a.digest, known)) for a in recent if a.digest][-DIGESTS:]
    if any(news for _, news in digests):
        lines.append("The logs of the latest runs, where they differ from the champion's run:")
        lines += [f"  #{n}:\n" + "\n".join(f"    {line}" for line in news) for n, news in digests if news]
    review = [_review(task, a) for a in recent[-5:] if a.status != "keep"]
    if review:
        lines.append("Review of the latest results that were not kept (verdict / evidence / what it suggests):")
        lines += [f"  - {r}" for r in review]
    if task.crash_tail:
        lines.append(f"The last run failed; the end of its log:\n{task.crash_tail}")
    if task.reflection:  # changes every few experiments: it would rewrite a cached block each time
        lines.append(f"Your reflection on the earlier experiments:\n{task.reflection}")
    if task.notes:
        lines.append(f"Your notes from last time:\n{task.notes}")
    if task.reflect:
        lines.append(REFLECT)
    if task.mode == "broaden":
        lines.append(BROADEN.format(stalled=task.stalled, patience=task.patience, twice=float(f"{2 * task.noise:.3g}")))
    else:
        lines.append(EXPLOIT)
    lines.append(f"Propose experiment #{task.experiment}.")
    return "\n".join(lines)


def _noise(task):
    """Where the night stands, and how far a number can be trusted: the champion's runs, the noise, the keep rule."""
    better = "lower" if task.direction == "minimize" else "higher"
    gain = "negative" if task.direction == "minimize" else "positive"
    runs = task.champion_runs
    named = "the baseline (nothing kept yet)" if task.champion_run and task.champion_run.id == 0 else "champion"
    line = f"The night so far: baseline {_f(task.baseline)}; {named} {_f(task.best)}"
    if len(runs) > 1:
        line += f", the median of its {len(runs)} runs ({', '.join(f'{v:.6g}' for v in runs[:8])})"
    lines = [line + "."]
    if task.noise:
        lines.append(f"The noise: one run varies by about {task.noise:.3g} (a standard deviation, from repeated runs).")
    lines.append(f"{task.metric}: {better} is better, so a {gain} delta is a gain.")
    if task.keep_rule:
        lines.append(f"The keep rule: {task.keep_rule}.")
    return lines


def _verdict(task, a):
    """What a result says, the noise considered: a result inside the noise is inconclusive, never a loss."""
    if a.status != "discard" or a.delta is None:
        return a.status
    worse = a.delta > 0 if task.direction == "minimize" else a.delta < 0
    return "worse" if worse and abs(a.delta) > task.margin else "inconclusive"


def _review(task, a):
    """Why an experiment was not kept, said the same way every time so the history reads consistently."""
    why = a.reason[:REASON_CHARS]
    if a.status == "discard":
        verdict = _verdict(task, a)
        if a.contended:
            return f"#{a.id} {verdict} / {why} / its run shared a busy machine: the number is weak evidence"
        if verdict == "inconclusive":
            side = "better" if (a.delta or 0) * (1 if task.direction == "maximize" else -1) > 0 else "worse"
            evidence = f"{_f(a.metric)} reads {abs(a.delta or 0):.4g} {side} than the champion, inside the noise"
            return f"#{a.id} inconclusive / {evidence} ({task.margin:g}) / a bigger step, or a combination, may tell"
        return f"#{a.id} worse / {why or _d(a.delta)} / this direction does not pay: try a different idea"
    if a.status in ("crash", "timeout"):
        return f"#{a.id} {a.status} / {why or 'no metric'} / fix the bug or make it cheaper, or drop the idea"
    if a.status == "duplicate":
        return f"#{a.id} duplicate / {why} / propose something not tried yet"
    return f"#{a.id} {a.status} / {why or 'rejected before running'} / follow the reply format and rules"


def _news(digest, known):
    """The lines of a run's digest that the champion's run did not print: its throughput lines always, and its
    start and its end when many."""
    new = [line for line in digest.splitlines() if line not in known]
    if len(new) <= DIGEST_LINES:
        return new
    speed = {line for line in new if THROUGHPUT.search(line)}
    rest = [line for line in new if line not in speed]
    shown = set(rest if len(rest) <= DIGEST_LINES else rest[:2] + rest[2 - DIGEST_LINES :]) | speed
    return [line for line in new if line in shown]


def _line(*parts):
    return "  " + " ".join(p for p in parts if p)


def _expected(a):
    return f"(expected {a.expected})" if a.expected else ""


def _contended(a):
    return " [CONTENDED: the machine was busy during its run; the number is not trusted]" if a.contended else ""


def _run(a):
    if a.seconds is None:
        return "(not run)"
    memory = f", {a.peak_mem_mb:.0f} MB" if a.peak_mem_mb else ""
    return f"({a.seconds:.0f} s{memory})"


def _f(x):
    return "n/a" if x is None else f"{x:.6f}"


def _d(x):
    return "" if x is None else f"{x:+.6f}"

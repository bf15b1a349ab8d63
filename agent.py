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

from harness.dialogue import Chat, settle
from harness.edits import fence_for
from harness.toolbox import TOOLS

# ---------------------------------------------------------------------------------------------------------------
# Strategy: the prompts (edit these first)

SYSTEM = """You are a research engineer running one experiment at a time, all night, to improve a single metric.
Each experiment changes one file; the harness runs it with a fixed wall-clock budget, keeps the change if the metric
beats the champion by more than the keep threshold, and resets it otherwise. The budget is wall-clock time, so a
change that makes each step faster buys more steps: speed counts as much as modelling. Good experiments are small,
testable ideas with a clear reason. Read the evidence (run times, memory, the digests of the logs): do not repeat
what failed, build on what was kept, and fix a crash if the last run crashed. If tools are offered you may look at
files, earlier experiments and run logs first, a few times at most.

Answer in exactly this format:
DESCRIPTION: <one line saying what this experiment tries and why>
NOTES: <optional, any number of lines you want to see next time; they replace your previous notes; the most
important first, since only the first 1500 characters are kept>
then one or more edit blocks:
<<<<<<< SEARCH
<exact lines of the current file>
=======
<the new lines>
>>>>>>> REPLACE
Each SEARCH must match exactly one place of the current file, including indentation; keep it short. To replace the
whole file instead, send it in one ```python fenced block after the NOTES."""

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
# The prompt: three cached blocks (the setup, all night; the champion, until a keep; the archive and the reflection)
# and the situation, which changes every time


def _setup(task):
    goal = "lower" if task.direction == "minimize" else "higher"
    lines = [
        f"# program.md\n{task.program}",
        "# The setup",
        f"- metric: {task.metric}, {goal} is better; a keep must beat the champion by more than {task.margin:g}",
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
    lines = []
    if task.archive:
        lines.append("# Code of earlier experiments (kept ones and near misses), as diffs against their champion")
        for i in task.archive:
            lines.append(f"## #{i.id} {i.status} {_f(i.metric)} {_d(i.delta)}: {i.description}\n{i.diff}")
    if task.reflection:  # changes every few experiments, so it is cached too
        lines.append(f"# Your reflection on the earlier experiments\n{task.reflection}")
    return "\n".join(lines)


def _situation(task):
    """The changing part: where the night stands, the evidence of recent runs, and the agent's own memory."""
    lines = [f"The night so far: baseline {_f(task.baseline)}, champion {_f(task.best)}."]
    recent = task.history  # already bounded by program.md's `history`
    if recent:
        lines.append("Recent experiments, oldest first (id, status, metric, delta, run, description):")
        lines += [f"  #{a.id} {a.status} {_f(a.metric)} {_d(a.delta)} {_run(a)} {a.description}" for a in recent]
    known = set(task.champion_run.digest.splitlines()) if task.champion_run else set()
    digests = [(a.id, _news(a.digest, known)) for a in recent if a.digest][-DIGESTS:]
    if any(news for _, news in digests):
        lines.append("The logs of the latest runs, where they differ from the champion's run:")
        lines += [f"  #{n}:\n" + "\n".join(f"    {line}" for line in news) for n, news in digests if news]
    review = [_review(a) for a in recent[-5:] if a.status != "keep"]
    if review:
        lines.append("Review of the latest failures (issue / evidence / suggested fix):")
        lines += [f"  - {r}" for r in review]
    if task.crash_tail:
        lines.append(f"The last run failed; the end of its log:\n{task.crash_tail}")
    if task.notes:
        lines.append(f"Your notes from last time:\n{task.notes}")
    if task.reflect:
        lines.append(REFLECT)
    lines.append(f"Propose experiment #{task.experiment}.")
    return "\n".join(lines)


def _review(a):
    """Why an experiment failed, said the same way every time so the history reads consistently."""
    why = a.reason[:REASON_CHARS]
    if a.status == "discard":
        return f"#{a.id} no gain / {why or _d(a.delta)} / try a different idea"
    if a.status in ("crash", "timeout"):
        return f"#{a.id} {a.status} / {why or 'no metric'} / fix the bug or make it cheaper, or drop the idea"
    if a.status == "duplicate":
        return f"#{a.id} duplicate / {why} / propose something not tried yet"
    return f"#{a.id} {a.status} / {why or 'rejected before running'} / follow the reply format and rules"


def _news(digest, known):
    """The lines of a run's digest that the champion's run did not print: its start and its end when many."""
    new = [line for line in digest.splitlines() if line not in known]
    return new if len(new) <= DIGEST_LINES else new[:2] + new[2 - DIGEST_LINES :]


def _run(a):
    if a.seconds is None:
        return "(not run)"
    memory = f", {a.peak_mem_mb:.0f} MB" if a.peak_mem_mb else ""
    return f"({a.seconds:.0f} s{memory})"


def _f(x):
    return "n/a" if x is None else f"{x:.6f}"


def _d(x):
    return "" if x is None else f"{x:+.6f}"

"""HyperAgent mode (`autoresearch hyper`): windows of experiments by the champion agent, its rewrite of itself, the
gates, probation, and the record of every generation; the plain night's loop, guards and limits do the rest."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness import endings, flight, runner, sandbox, toolbox
from harness.agents.host import AGENT_LIMITS, HostedAgent, agent_sha, jails
from harness.brief import build_task
from harness.config import Config
from harness.errors import (
    AgentError,
    BudgetExceeded,
    HarnessError,
    LimitReached,
    LLMError,
    LoopEnd,
    RequestRefused,
    ServiceFailed,
)
from harness.hyper import contract, gates, probation
from harness.hyper.gates import Limits, Rejection
from harness.hyper.probation import Probation
from harness.ledger import Experiment, Generation, GenerationStatus
from harness.night import Night
from harness.paths import AGENT, PROGRAM, Layout, agent_ref, seed_agent_tag
from harness.repo import Repo, with_trailers
from harness.session import Options, Session
from harness.status import Screen, write_status
from harness.task import Agent, Spend, Task
from harness.text import REASON_CHARS, one_line

STOPPED = "the harness stopped during this generation (killed, power cut or Ctrl-C)"


@dataclass(frozen=True)
class Plan:
    """How `hyper` alternates: experiments per window, generations in this invocation, and the gates' limits."""

    window: int = 10  # experiments by the champion between two rewrites; probation looks after each window as long
    generations: int | None = None  # rewrites in this invocation; None: until another limit ends the night
    limits: Limits = field(default_factory=Limits)


@dataclass
class Trial:
    """A candidate that passed the gates, on probation."""

    generation: int
    agent: HostedAgent
    path: Path  # its source, outside the tree
    description: str
    spend: Spend  # what its rewrite cost
    probation: Probation


def run(root: Path, options: Options, plan: Plan, *, screen: Screen, secrets: Mapping[str, str]) -> runner.Ending:
    """A HyperAgent night: `run`'s night, whose turns add the champion agent's rewrites, their gates and
    probation."""
    return runner.run(
        root, replace(options, agent="llm"), screen=screen, make_agent=champion_agent, secrets=secrets,
        conduct=lambda session, agent, screen: Hyper(session, agent, screen, plan),
    )  # fmt: skip


def champion_agent(
    kind: str, config: Config, night: Night, layout: Layout, repo: Repo, say: Callable[[str], None],
    secrets: Mapping[str, str],
) -> HostedAgent:  # fmt: skip
    """The champion agent: agent.py as the branch has it, its children in the agents' sandbox."""
    return HostedAgent.start(layout.agent, "llm", config, layout, night.tag, say, secrets, jail=jails(config, repo),
                             limits=AGENT_LIMITS, entries=contract.ENTRIES)  # fmt: skip


class Hyper:
    """The conductor of a HyperAgent night (harness.engine.Conductor): before each experiment it says which agent
    proposes it (the champion agent, or a candidate on probation), rewriting the champion after each window."""

    def __init__(self, session: Session, agent: Agent, screen: Screen, plan: Plan) -> None:
        if not isinstance(agent, HostedAgent):
            raise TypeError("HyperAgent mode drives an agent file")
        self.plan, self.s, self.screen = plan, session, screen
        self.night, self.repo, self.layout, self.tag = session.night, session.repo, session.layout, session.tag
        self.watch = endings.watcher(session.options, session.layout, session.started)
        config = self.s.config
        if not self.s.sandbox.active and config.sandbox != "off":
            missing = self.s.sandbox.missing.removesuffix(f": {sandbox.UNISOLATED}")
            raise HarnessError(
                f"HyperAgent mode runs agents the model wrote, and there is {missing}; install bubblewrap, or set "
                "'sandbox: off' in program.md to run them without it"
            )
        self.jail = jails(config, self.repo)
        self.champion: HostedAgent = agent
        self.trial: Trial | None = None
        self.done = 0  # generations decided in this invocation
        if not self.repo.exists(f"refs/tags/{seed_agent_tag(self.tag)}") and not self.night.generations:
            self.repo.tag(seed_agent_tag(self.tag), self.night.champion)
        self._recover()
        self.window = self._since_last_generation()

    # --- between two experiments: a rewrite when the window is done, and who proposes the next one -------------

    def next_agent(self) -> Agent:
        if self.trial is None:
            if self.window >= self.plan.window:
                self.answer()  # after every window, whatever else ends the night
            self._check_generations()
            if self.window >= self.plan.window:
                self.window = 0
                if len(self._record_of(self.champion.sha)) >= probation.RECORD * self.plan.window:
                    self.trial = self.generation()
                if self.trial is None:
                    self._check_generations()
        return self.trial.agent if self.trial else self.champion

    def finished(self, row: Experiment) -> None:
        """An experiment's row: a window's count goes on, or a candidate's probation takes it."""
        if self.trial is None:
            self.window += 1
        else:
            self.trial.probation.add(row)
            if self.trial.probation.done:
                self.decide(self.trial)

    def _check_generations(self) -> None:
        if self.plan.generations is not None and self.done >= self.plan.generations:
            raise LimitReached(f"reached --generations {self.plan.generations}")

    # --- a generation: the rewrite and the gates ------------------------------------------------------------

    def generation(self) -> Trial | None:
        """The champion's rewrite of itself through the gates: a Trial on probation, or None (recorded rejected)."""
        config = self.s.config
        if self.night.spend_usd >= config.max_cost_usd:  # a rewrite is paid for like a proposal
            raise BudgetExceeded(
                f"LLM spend ${self.night.spend_usd:.2f} of night '{self.tag}' reached max_cost_usd "
                f"${config.max_cost_usd:.2f}"
            )
        n = 1 + max((g.generation for g in self.night.generations if g.status != "reverted"), default=0)
        self._mark(n, "rewrite")
        self._status("rewriting", f"generation {n}: the champion agent rewrites itself")
        source = self.layout.agent.read_text(encoding="utf-8")
        task = self.champion.evidence.attach(self._task())
        self.champion.watch = self.watch
        try:
            proposal = self.champion.call("rewrite", replace(task, agent_source=source), log_name=self._log(n))
        except (AgentError, RequestRefused) as e:
            return self._rejected(n, Rejection("rewrite", str(e)), None, "", self.champion.take_spend())
        except (BudgetExceeded, LLMError) as e:
            self._rejected(n, Rejection("rewrite", f"no candidate: {e}"), None, "", self.champion.take_spend())
            if isinstance(e, BudgetExceeded):
                raise
            raise ServiceFailed(f"the LLM service failed: {e}") from None
        except LoopEnd as e:  # a stop request or --hours while the champion rewrote itself
            why = f"the night ended during the rewrite ({e})"
            self._rejected(n, Rejection("rewrite", why), None, "", self.champion.take_spend())
            raise
        spend = self.champion.take_spend()
        description = one_line(proposal.description) or "(no description)"
        content = proposal.content
        sha = agent_sha(content.encode("utf-8", errors="replace"))
        tried = {g.agent_sha for g in self.night.generations} | {g.champion_sha for g in self.night.generations}
        rejection = gates.scope(content, source, tried | {self.champion.sha}, sha, self._strays())
        if rejection is not None:
            return self._rejected(n, rejection, None, description, spend, sha)
        path = self.layout.agent_copy(self.tag, str(n))
        _write(path, content)
        self._mark(n, "compile", description=description, spend=spend)
        rejection = gates.static(content)
        if rejection is None:
            self._status("gates", f"generation {n}: the import, signature and smoke gates")
            evidence = self.champion.evidence
            rejection = gates.isolated(
                path, task, self.jail(self.layout.work(self.tag, "agent"), [path]),
                self.layout.generation_log(self.tag, n, "gates"), self.plan.limits,
                entered=lambda stage: self._mark(n, stage, description=description, spend=spend),
                model=config.model, tools=lambda name, args: toolbox.serve(name, args, task, evidence),
            )  # fmt: skip
        if rejection is not None:
            return self._rejected(n, rejection, path, description, spend, sha)
        self._mark(n, "probation", description=description, spend=spend)
        self.s.ledger.note(self.tag, f"generation {n} passed the gates; on probation", generation=n)
        self.screen.info(f"generation {n}: passed the gates ({description}); probation begins")
        agent = self._hosted(path, f"gen{n}")
        reference = tuple(self._record_of(self.champion.sha))
        trial = Probation(self.plan.window, reference, config.direction, floor=tuple(self._floor()))
        return Trial(n, agent, path, description, spend, trial)

    def decide(self, trial: Trial) -> None:
        """Accept the candidate on the branch, or keep it under refs/autoresearch/<tag>/agents/<n>, by the
        probation rule (harness.hyper.probation)."""
        verdict = trial.probation.verdict
        assert verdict is not None, "decide() follows a probation that is done"
        accepted, why, scores = verdict.accepted, verdict.why, verdict.scores
        self.trial = None
        if not accepted:
            self._rejected(trial.generation, Rejection("probation", why), trial.path, trial.description, trial.spend,
                           trial.agent.sha, scores)  # fmt: skip
            return
        parent = self.night.champion
        commit = self.repo.commit_beside(parent, AGENT, trial.path, self._message(trial.generation, trial.description))
        self._record(
            trial.generation, "accepted", "probation", "", trial.agent.sha, commit, parent, trial.description,
            trial.spend, scores,
        )  # fmt: skip
        self.s.reset_hard(commit)  # the row is written: now the branch and the tree follow it
        self.champion = self._hosted(self.layout.agent, "llm")
        self.screen.info(f"generation {trial.generation}: accepted, {why}")
        self.layout.generation_marker(self.tag).unlink(missing_ok=True)

    # --- a champion answers for its record ---------------------------------------------------------------------

    def answer(self) -> None:
        """After each window: a champion whose experiments as champion did clearly worse than the record of the
        agent before it (harness.hyper.probation.answers) gives its place back to that agent, whatever its failures
        were (raises, no proposal, invalid or unchanged files, discards)."""
        crowned = self._crowned()
        if crowned is None:
            return  # the seed agent: a person wrote it, and there is no agent before it
        reference = self._floor()
        after = crowned.after if crowned.after is not None else -1
        record = [r for r in self._record_of(self.champion.sha) if r.id > after and r.agent == self.champion.name]
        why = probation.answers(record, reference, self.plan.window, self.s.config.direction)
        if not why:
            return
        lineage = self._lineage()
        (_, number), (before, _) = lineage[-1], lineage[-2]
        path = self.layout.agent_copy(self.tag, "previous")
        _write(path, self.repo.show(before, AGENT))
        parent = self.night.champion
        commit = self.repo.commit_beside(parent, AGENT, path, with_trailers(
            f"agent: back to the agent before generation {number}", {"Generation": str(number), "Status": "reverted"}
        ))  # fmt: skip
        sha = agent_sha(path.read_bytes())
        self._record(number, "reverted", "record", why, sha, commit, parent, "back to the previous champion", Spend(),
                     {"reference": [r.id for r in reference], "record": [r.id for r in record]})  # fmt: skip
        self.s.reset_hard(commit)
        self.champion = self._hosted(self.layout.agent, "llm")
        self.screen.info(f"generation {number}: reverted: {why}")

    def _floor(self) -> list[Experiment]:
        """The record the champion was accepted against (its reference on probation); none for the seed agent."""
        crowned = self._crowned()
        by_id = {r.id: r for r in self.night.rows}
        return [by_id[i] for i in (crowned.scores.get("reference", []) if crowned else []) if i in by_id]

    def _record_of(self, sha: str) -> list[Experiment]:
        """The experiments an agent version proposed in this night (on probation and as champion), the latest
        REFERENCE windows of them; interrupted ones are no evidence."""
        rows = [r for r in self.night.rows if r.id != 0 and r.agent_sha == sha and r.status != "interrupted"]
        return rows[-probation.REFERENCE * self.plan.window :]

    def _crowned(self) -> Generation | None:
        """The generation row that made the champion what it is (its acceptance), or None for the seed agent."""
        stack: list[Generation] = []
        for g in self.night.generations:
            if g.status == "accepted":
                stack.append(g)
            elif g.status == "reverted" and stack:
                stack.pop()
        return stack[-1] if stack else None

    def _lineage(self) -> list[tuple[str, int]]:
        """The commits the champion agents came from, oldest first, with their generations (the seed's is 0)."""
        seed = self.repo.resolve(f"refs/tags/{seed_agent_tag(self.tag)}")
        lineage = [(seed, 0)]
        for g in self.night.generations:
            if g.status == "accepted" and g.commit:
                lineage.append((g.commit, g.generation))
            elif g.status == "reverted" and len(lineage) > 1:
                lineage.pop()
        return lineage

    # --- records --------------------------------------------------------------------------------------------

    def _rejected(
        self, n: int, rejection: Rejection, path: Path | None, description: str, spend: Spend, sha: str = "",
        scores: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """Record a rejected generation: its candidate committed beside the branch, under agents/<n>."""
        commit = None
        if path is not None and path.is_file():
            commit = self.repo.commit_beside(self.night.champion, AGENT, path, self._message(n, description))
        error = one_line(rejection.error, REASON_CHARS)
        self._record(n, "rejected", rejection.stage, error, sha, commit, self.night.champion, description, spend,
                     scores or {})  # fmt: skip
        if commit:
            self.repo.set_ref(agent_ref(self.tag, n), commit)
        self.layout.generation_marker(self.tag).unlink(missing_ok=True)
        self.screen.info(f"generation {n}: rejected at {rejection.stage}: {error}")
        self.done += 1

    def _record(
        self, n: int, status: GenerationStatus, stage: str, error: str, sha: str, commit: str | None, parent: str,
        description: str, spend: Spend, scores: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        error = one_line(error, REASON_CHARS) if error else ""
        row = Generation(
            tag=self.tag, generation=n, status=status, stage=stage, error=error, agent_sha=sha,
            champion_sha=self.champion.sha, commit=commit, scores=scores or {}, parent=parent,
            description=one_line(description), after=self.night.rows[-1].id if self.night.rows else None,
            tokens_in=spend.tokens_in, tokens_out=spend.output_tokens, cost_usd=round(spend.cost_usd, 6),
        )  # fmt: skip
        self.s.ledger.append(row)
        self.night.adopt(row)
        if status == "accepted":
            self.done += 1

    def _recover(self) -> None:
        """A generation a kill -9 (or a power cut) stopped is recorded rejected at the stage it was in."""
        marker = self.layout.generation_marker(self.tag)
        try:
            data = json.loads(marker.read_text())
        except (OSError, ValueError):
            marker.unlink(missing_ok=True)
            return
        n = int(data.get("generation") or 0)
        if n and not any(g.generation == n and g.status != "reverted" for g in self.night.generations):
            path = self.layout.agent_copy(self.tag, str(n))
            found = path if path.is_file() else None
            sha = agent_sha(path.read_bytes()) if found else ""
            spend = Spend.from_json(data.get("spend"))
            self._rejected(n, Rejection(str(data.get("stage") or "rewrite"), STOPPED), found,
                           str(data.get("description", "")), spend, sha)  # fmt: skip
            self.done -= 1  # not a generation of this invocation
        marker.unlink(missing_ok=True)

    def _mark(self, n: int, stage: str, *, description: str = "", spend: Spend | None = None) -> None:
        data = {"generation": n, "stage": stage, "parent": self.night.champion, "description": description,
                "spend": (spend or Spend()).to_json()}  # fmt: skip
        flight.write_marker(self.layout.generation_marker(self.tag), data)

    # --- helpers --------------------------------------------------------------------------------------------

    def _since_last_generation(self) -> int:
        """Experiments since the last generation row (or the night's start), the baseline not counted."""
        count = 0
        for row in self.s.ledger.read():
            if row.tag != self.tag:
                continue
            if type(row) is Generation:
                count = 0
            elif type(row) is Experiment and row.id != 0:
                count += 1
        return count

    def _task(self) -> Task:
        config = self.s.config
        champion = self.repo.show(self.night.champion, config.mutable)
        return build_task(self.night, self.s.program.text, config, champion)

    def _strays(self) -> list[str]:
        """What the rewrite changed in the repository besides what it answered: undone, and named."""
        control = self.s.restore_control()
        strays = [p for p in self.repo.changed() if p != PROGRAM]
        if strays:
            self.repo.restore(strays)
        return [*control, *strays]

    def _hosted(self, path: Path, name: str) -> HostedAgent:
        c = self.champion
        return HostedAgent(path, c.client, name=name, root=c.root, workdir=c.workdir, log_dir=c.log_dir,
                           evidence=c.evidence, time_limit=c.time_limit, jail=self.jail, watch=c.watch,
                           limits=c.limits, entries=c.entries)  # fmt: skip

    def _message(self, n: int, description: str) -> str:
        return with_trailers(f"agent: {description}", {"Generation": str(n)})

    def _log(self, n: int) -> str:
        return self.layout.generation_log(self.tag, n, "rewrite").name

    def _status(self, phase: str, description: str) -> None:
        state = self.s.state(self.champion.name, phase, self.night.next_id(), description)
        write_status(self.layout.status, state)
        self.screen.update(state)


def _write(path: Path, content: str) -> None:
    """A version of agent.py outside the tree, readable by the sandbox's user (it only reads it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    os.chmod(path, 0o644)

"""The harness's exceptions: a person's mistake (HarnessError), the ways a night ends (LoopEnd), an agent's failure."""


class HarnessError(Exception):
    """A problem a person can fix; the CLI prints it as one line and exits with `exit_code`."""

    exit_code = 1


class ProgramError(HarnessError):
    """program.md is malformed; the message names the file and the line."""

    exit_code = 2


class RepoError(HarnessError):
    """A git command failed, or the repository is not in a state the loop can work from."""


class LedgerError(HarnessError):
    """experiments.log could not take a whole row (a full disk, a file size limit); the rows before it are intact."""


class DiskFull(HarnessError):
    """The disk (or the file size limit) refused a write the night needed; it stops, nothing is lost."""


class LockedError(HarnessError):
    """Another loop holds this repository."""


class LLMError(HarnessError):
    """The LLM service refused us for a reason that waiting will not fix (bad key, bad request)."""

    exit_code = 2


class RequestRefused(LLMError):
    """The API refused this one request (a 400 or 413 for this prompt), not the key or the account: the experiment
    it was for is invalid, and the next request may pass."""


class SandboxError(HarnessError):
    """`sandbox: required`, and the OS sandbox cannot start on this machine; the message says why."""

    exit_code = 2


class AgentError(Exception):
    """An agent failed to produce a usable proposal; recorded as data, never fatal."""


# ---------------------------------------------------------------------------------------------------------------
# How a night ends. Raised inside the loop, caught once by it: the reason goes to the ledger, the status file and
# the exit line, and `exit_code` becomes the command's exit status.


class LoopEnd(Exception):
    """The night ends here, for the reason in the message."""

    exit_code = 0


class StopRequested(LoopEnd):
    """`autoresearch stop` asked for it."""


class LimitReached(LoopEnd):
    """--max-experiments or --hours was reached."""


class BudgetExceeded(LoopEnd):
    """The night's LLM spend reached max_cost_usd."""


class Interrupted(LoopEnd):
    """Ctrl-C or SIGTERM: the run under way was stopped and the tree is back at the champion."""


class ServiceFailed(LoopEnd):
    """The LLM service failed for the night (refused us, or stayed down past patience): not a clean end."""

    exit_code = 4


class Crashed(LoopEnd):
    """A bug in the harness: the traceback is in the crash log the message names."""

    exit_code = 3

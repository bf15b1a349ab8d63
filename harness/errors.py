"""The harness's own errors: a person's mistake, said in one line that names the thing, the place and the next step."""


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


class LockedError(HarnessError):
    """Another loop holds this repository."""


class LLMError(HarnessError):
    """The LLM service refused us for a reason that waiting will not fix (bad key, bad request)."""

    exit_code = 2


class BudgetExceeded(HarnessError):
    """The run's LLM spend reached max_cost_usd."""


class AgentError(Exception):
    """An agent failed to produce a usable proposal; recorded as data, never fatal."""

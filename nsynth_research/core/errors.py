"""Errors a user can act on.

Every problem with user input (data, configs, run ids) is raised as a subclass of
`UserError`; the CLI prints its message without a traceback, so the message itself must say
what was wrong, where, and what to do about it.
"""


class UserError(Exception):
    """A problem the user can fix; its message is shown as-is by the CLI."""


class DataError(UserError):
    """Bad or missing data: a split, a manifest entry, a file a task cannot read."""


class ConfigError(UserError):
    """A config file or override that does not validate; the message names the key."""


class MachineError(Exception):
    """The machine failed, not the input: a full disk, a read-only or unreachable store.

    The CLI prints it as one `error:` line with exit 2, like a UserError; unlike one, a study
    stops on it instead of failing the trial and starting the next, which would fail the same
    way (so it is deliberately not a UserError subclass).
    """

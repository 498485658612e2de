"""The exceptions and the warning of `quantlake`: one class per class of the command line's exit
codes, so `sys.exit(e.exit_code)` ends a script as the command would have."""


class QuantlakeError(Exception):
    """A call quantlake could not do, with the command line's message. `exit_code` is the command
    line's exit code for the same failure: 3 (UNKNOWN, could not run) unless a subclass says otherwise."""

    __module__ = "quantlake"
    exit_code = 3


class InvalidInputError(QuantlakeError, ValueError):
    """An argument quantlake cannot take: a bad date, time, symbol, frequency or duration, an unknown
    dataset, label, universe or snapshot, a bad config file (exit code 3). Also a `ValueError`."""

    __module__ = "quantlake"


class LakeUnavailableError(QuantlakeError):
    """No lake at that root (run `quantlake init`), or the lake cannot be reached (exit code 3)."""

    __module__ = "quantlake"


class LakeDamagedError(QuantlakeError):
    """The lake is damaged: a data file or commit the call needs is missing or unreadable (exit code 2,
    CRITICAL). `quantlake verify` names what; `quantlake recover` and `restore` repair."""

    __module__ = "quantlake"
    exit_code = 2


class QuantlakeWarning(UserWarning):
    """A partial result (exit code 1, WARNING), e.g. symbols asked for without rows: the result is
    returned and lists it in `warnings`. `warnings.simplefilter("error", quantlake.QuantlakeWarning)`
    makes it an exception instead."""

    __module__ = "quantlake"
    exit_code = 1

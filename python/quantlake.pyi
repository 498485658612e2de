"""quantlake: an embedded, file-based market-data lake. Reads come back as Arrow streams that polars,
pandas and pyarrow take without a copy (the Arrow PyCapsule interface)."""

from os import PathLike
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

__version__: str

class QuantlakeError(Exception):
    """A call quantlake could not do, with the command line's message. `exit_code` is the command
    line's exit code for the same failure: 3 (UNKNOWN, could not run) unless a subclass says otherwise."""

    exit_code: int

class InvalidInputError(QuantlakeError, ValueError):
    """An argument quantlake cannot take: a bad date, time, symbol, frequency or duration, an unknown
    dataset, label, universe or snapshot, a bad config file (exit code 3). Also a `ValueError`."""

class LakeUnavailableError(QuantlakeError):
    """No lake at that root (run `quantlake init`), or the lake cannot be reached (exit code 3)."""

class LakeDamagedError(QuantlakeError):
    """The lake is damaged: a data file or commit the call needs is missing or unreadable (exit code 2,
    CRITICAL). `quantlake verify` names what; `quantlake recover` and `restore` repair."""

class QuantlakeWarning(UserWarning):
    """A partial result (exit code 1, WARNING), e.g. symbols asked for without rows: the result is
    returned and lists it in `warnings`. `warnings.simplefilter("error", quantlake.QuantlakeWarning)`
    makes it an exception instead."""

    exit_code: int

class Table:
    """Rows as Arrow record batches. polars (`pl.DataFrame(t)`), pyarrow (`pa.table(t)`) and pandas
    (`t.to_pandas()`) take them through `__arrow_c_stream__` without a copy."""

    @property
    def num_rows(self) -> int:
        """Rows in all."""
    @property
    def column_names(self) -> List[str]:
        """The columns' names."""
    @property
    def warnings(self) -> List[str]:
        """What a partial result lacks (the command line exits 1 with these), each also told to
        Python's `warnings` as a `QuantlakeWarning`."""
    def __arrow_c_stream__(self, requested_schema: Optional[Any] = None) -> Any:
        """The Arrow PyCapsule interface: a stream of the batches, each exported, not copied."""
    def buffer_addresses(self, column: str) -> List[List[int]]:
        """The addresses of each batch's data buffers of `column` (the validity bitmap aside): how a
        test shows that a consumer got these very buffers, not copies."""
    def to_pyarrow(self) -> Any:
        """A `pyarrow.Table` (needs pyarrow)."""
    def to_pandas(self) -> Any:
        """A `pandas.DataFrame` (needs pyarrow, which pandas reads Arrow with)."""
    def to_polars(self) -> Any:
        """A `polars.DataFrame` (needs polars only)."""
    def __len__(self) -> int: ...

class TrainingSet(Table):
    """A training set's rows (a `Table`) with what they are: the target, the feature columns, the
    lineage the command line prints, and the candidate rows each rule left out."""

    @property
    def target(self) -> str:
        """Which label the rows' `target` column holds: the one asked for, or its fallback."""
    @property
    def feature_columns(self) -> List[str]:
        """The feature columns, in the set's order (the model's inputs)."""
    @property
    def lineage(self) -> Dict[str, Any]:
        """The lineage record, as `quantlake training-set --json` prints it: inputs and their
        snapshots, row counts, the leakage check."""
    @property
    def rows_left_out(self) -> Dict[str, int]:
        """Candidate rows left out, by rule: no_target, purged (the label ends after the cutoff),
        no_features, annotations (excluded by them), not_members (of the universe)."""

class Lake:
    """A lake, opened as the command line opens it.

    root: a path or `s3://bucket/prefix` (default: the config's `lake.root`).
    config: the config file (default: `config/quantlake.toml` when it exists); the environment
        overrides it as for the command line (`QUANTLAKE_*`, `AWS_*`, vendor keys).

    Calls release the interpreter (threads may share one `Lake`) and stop on Ctrl-C. Errors are
    `QuantlakeError`s with the command line's message and exit code; partial results carry
    `warnings` and tell Python's `warnings` (`QuantlakeWarning`)."""

    def __init__(self, root: Optional[str] = None, config: Optional[Union[str, PathLike[str]]] = None) -> None: ...
    @property
    def root(self) -> str:
        """The lake's root."""
    def bars(
        self,
        symbols: Sequence[str],
        start: str,
        end: Optional[str] = None,
        frequency: str = "1m",
        adjust: str = "none",
        as_of: Optional[str] = None,
        resolve_at: Optional[str] = None,
        extended_hours: bool = False,
    ) -> Table:
        """Curated bars, sorted by symbol and ts, as `quantlake bars`.

        symbols: the tickers, each resolved to its security on `resolve_at`.
        start, end: the first and last session dates, inclusive (YYYY-MM-DD; `end` defaults to `start`).
        frequency: 1m, 5m, 15m, 30m, 1h or 1d.
        adjust: none, splits or all (splits and dividends), as known at `as_of`.
        as_of: the lake state read: a lake tag, a tag, a snapshot number, a time, or dataset@SPEC pins
            (default: the latest).
        resolve_at: the date tickers name securities on (default: `end`).
        extended_hours: also the pre- and post-market minutes.

        A symbol without rows is named in the result's `warnings` (a `QuantlakeWarning`)."""
    def query(self, sql: str, as_of: Optional[str] = None) -> Table:
        """The rows of one DuckDB SQL statement over the lake, as `quantlake query`: every dataset is a
        view of its snapshot at `as_of` (default: the latest). Ctrl-C interrupts the statement."""
    def training_set(
        self,
        label: str,
        start: str,
        end: str,
        feature_set: str = "features_price_1m_v1",
        symbols: Optional[Sequence[str]] = None,
        as_of: Optional[str] = None,
        embargo: Optional[str] = None,
        universe: Optional[str] = None,
        fundamentals: Optional[Sequence[str]] = None,
        progress: Optional[Callable[[int, int], Any]] = None,
    ) -> TrainingSet:
        """A point-in-time training set, as `quantlake training-set`: for each label row, the latest
        features complete at its decision time, never a value published after it.

        label: the target, a label set's target, e.g. fwd_ret_resid_15m (falls back to fwd_ret_15m
            when its coverage over the last DAYS_BACK sessions is below MIN_TARGET_COVERAGE; `target`
            says).
        start, end: the first and last session dates, inclusive (YYYY-MM-DD).
        feature_set: the features' dataset.
        symbols: only these (default: the universe's members).
        as_of: the lake state read (default: the latest).
        embargo: also leave out rows whose label ends within this long of the range's end (e.g. 1d, 30m).
        universe: whose rows: the members of this universe on each decision date (default:
            securities.default_universe, when the security master records its membership; else every
            symbol with data), or "all" for every symbol with data.
        fundamentals: fundamentals items to add (e.g. ["revenues"]), from each symbol's latest filing
            dated before the decision date.
        progress: called with (sessions done, sessions in all) as the sessions are joined.

        The result's `target`, `feature_columns`, `lineage` and `rows_left_out` describe the rows; a
        symbol asked for without rows is named in its `warnings`."""
    def inference_set(
        self,
        at: Optional[str] = None,
        feature_set: str = "features_price_1m_v1",
        symbols: Optional[Sequence[str]] = None,
        as_of: Optional[str] = None,
        universe: Optional[str] = None,
    ) -> Table:
        """The latest complete features per symbol at a decision time, as `quantlake inference-set`.

        at: the decision time, RFC 3339 (e.g. 2024-03-01T15:00:00Z; default: now).
        feature_set: the features' dataset.
        symbols: only these (default: the universe's members with features in the last sessions).
        as_of: the lake state read (e.g. the tag a model was trained on; default: the latest).
        universe: without `symbols`, whose rows: the members of this universe on the decision date
            (default: securities.default_universe, when the security master records its membership;
            else every symbol with features), or "all"."""
    def health(self, dataset: str = "curated_1m_bars", as_of_date: Optional[str] = None) -> Dict[str, Any]:
        """A dataset's health, as `quantlake health --dataset D --json`: GREEN, YELLOW or RED with each
        check, as of the last completed session or `as_of_date` (YYYY-MM-DD)."""
    def snapshots(self, dataset: str, limit: int = 20) -> List[Dict[str, Any]]:
        """A dataset's snapshots, newest first (at most `limit`), with their tags, as `quantlake
        snapshots D --json`."""
    def dq_summary(self, dataset: str, start: str, end: Optional[str] = None) -> Dict[str, Any]:
        """Data-quality metrics of `dataset` per session from `start` to `end` and in total, as
        `quantlake dq summary --json`."""
    def jobs(self, kind: Optional[str] = None, since: Optional[str] = None) -> List[Dict[str, Any]]:
        """The job records, newest first, as `quantlake jobs --json`: of `kind` only; created after
        `since` (an RFC 3339 time) only."""
    def universe(self, at: str, universe: Optional[str] = None, as_of: Optional[str] = None) -> List[Dict[str, Any]]:
        """The members of a universe (default: securities.default_universe) on the date `at`, each with
        its ticker then, as the security master knew at `as_of`: `quantlake universe show --at`."""
    def tag(
        self, name: str, dataset: Optional[str] = None, all: bool = False, message: str = "", force: bool = False
    ) -> Dict[str, Any]:
        """Names a snapshot, as `quantlake snapshot tag`: `dataset`'s latest, or with `all=True` one
        consistent cut of every dataset (a lake tag). `as_of=name` reads it back. `force` moves an
        existing tag of that name."""

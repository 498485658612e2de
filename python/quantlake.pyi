"""quantlake: an embedded, file-based market-data lake. Reads come back as Arrow streams that polars,
pandas and pyarrow take without a copy (the Arrow PyCapsule interface)."""

from os import PathLike
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

class QuantlakeError(Exception):
    """A call quantlake could not do, with the command line's message."""

    exit_code: int
    """The command line's exit code for it (3: could not run)."""

class Table:
    """Rows as Arrow record batches: `pl.DataFrame(t)`, `pa.table(t)`, `t.to_pandas()`."""

    @property
    def num_rows(self) -> int: ...
    @property
    def column_names(self) -> List[str]: ...
    @property
    def warnings(self) -> List[str]:
        """What a partial result lacks (the command line exits 1 with these)."""
    def __arrow_c_stream__(self, requested_schema: Optional[Any] = None) -> Any: ...
    def buffer_addresses(self, column: str) -> List[List[int]]:
        """Each batch's data buffers of `column` (the validity bitmap aside), by address."""
    def to_pyarrow(self) -> Any:
        """A `pyarrow.Table` (needs pyarrow)."""
    def to_pandas(self) -> Any:
        """A `pandas.DataFrame` (needs pyarrow)."""
    def to_polars(self) -> Any:
        """A `polars.DataFrame`."""
    def __len__(self) -> int: ...

class TrainingSet(Table):
    """A training set's rows with what they are."""

    @property
    def target(self) -> str:
        """Which label the rows' `target` column holds: the one asked for, or its fallback."""
    @property
    def feature_columns(self) -> List[str]: ...
    @property
    def lineage(self) -> Dict[str, Any]:
        """The lineage record, as `quantlake training-set --json` prints it."""
    @property
    def rows_left_out(self) -> Dict[str, int]:
        """Candidate rows left out by rule: no_target, purged, no_features, annotations, not_members."""

class Lake:
    """A lake, opened as the command line opens it: `root` (a path or `s3://bucket/prefix`) or the
    config's `lake.root`, the config file (`config/quantlake.toml`, or `config`) and the environment."""

    def __init__(self, root: Optional[str] = None, config: Optional[Union[str, PathLike[str]]] = None) -> None: ...
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
        """Curated bars, as `quantlake bars`: `frequency` 1m, 5m, 15m, 30m, 1h or 1d; `adjust` none,
        splits or all; `as_of` a snapshot, tag or time; `resolve_at` the date tickers name securities
        on (default: `end`). A symbol without rows is named in the result's `warnings`."""
    def query(self, sql: str, as_of: Optional[str] = None) -> Table:
        """A DuckDB SQL statement over the lake's datasets at `as_of`, as `quantlake query`."""
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
        """A point-in-time training set, as `quantlake training-set` (rows of the default universe's
        members on each decision date; `universe="all"` for every symbol with data). `progress` is
        called with (sessions done, sessions in all) as the sessions are joined."""
    def inference_set(
        self,
        at: str,
        feature_set: str = "features_price_1m_v1",
        symbols: Optional[Sequence[str]] = None,
        as_of: Optional[str] = None,
    ) -> Table:
        """The latest complete features per symbol at `at` (RFC 3339), as `quantlake inference-set`."""
    def health(self, dataset: str = "curated_1m_bars", as_of_date: Optional[str] = None) -> Dict[str, Any]:
        """A dataset's health, as `quantlake health --json`."""
    def snapshots(self, dataset: str, limit: int = 20) -> List[Dict[str, Any]]:
        """A dataset's snapshots, newest first, as `quantlake snapshots D --json`."""
    def dq_summary(self, dataset: str, start: str, end: Optional[str] = None) -> Dict[str, Any]:
        """Data-quality metrics per session and in total, as `quantlake dq summary --json`."""
    def jobs(self, kind: Optional[str] = None, since: Optional[str] = None) -> List[Dict[str, Any]]:
        """Job records, newest first, as `quantlake jobs --json` (`since`: an RFC 3339 time)."""
    def universe(self, at: str, universe: Optional[str] = None, as_of: Optional[str] = None) -> List[Dict[str, Any]]:
        """The members of a universe on the date `at`, each with its ticker then (`quantlake universe show`)."""
    def tag(
        self, name: str, dataset: Optional[str] = None, all: bool = False, message: str = "", force: bool = False
    ) -> Dict[str, Any]:
        """Tags `dataset`'s latest snapshot, or with `all=True` the whole lake (`quantlake snapshot tag`)."""

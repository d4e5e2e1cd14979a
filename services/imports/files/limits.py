"""The limits an uploaded file must keep to, in one configurable dataclass."""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Every limit applied to an untrusted file, from the upload's size to the reading worker's memory.

    The defaults suit a large district: 25 MB, 200,000 data rows and 100 columns per file.
    """

    max_bytes: int = 25 * MB
    max_rows: int = 200_000
    max_columns: int = 100
    # Archives (.xlsx, .xlsm and OneRoster .zip bundles), checked before anything is decompressed.
    max_zip_entries: int = 2_000
    max_uncompressed_bytes: int = 1024 * MB
    max_compression_ratio: float = 200.0
    # Entries smaller than this when expanded are not ratio-checked (tiny XML parts compress very well).
    ratio_check_min_bytes: int = 1 * MB
    # The worker process that parses the file.
    worker_memory_bytes: int = 2048 * MB
    worker_cpu_seconds: int = 60
    worker_timeout_seconds: float = 120.0
    # "forkserver" (fast to start) or "spawn".
    worker_start_method: str = "forkserver"

    def __post_init__(self) -> None:
        if self.worker_start_method not in ("forkserver", "spawn"):
            raise ValueError("worker_start_method must be 'forkserver' or 'spawn'")

"""Fewer lines that hide the message: Ultralytics' log lines that say nothing a user acts on, dropped and summed up.

- the trainer's settings line (about 2,000 characters, every key of ``args``): ``args.yaml`` holds the same;
- one "Freezing layer '...'" line per frozen tensor (about 200 for the teacher's decoder stage).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from ultralytics.utils import LOGGER


class DropLines(logging.Filter):
    """Drops log records that start with (or contain) a marker, and counts them."""

    def __init__(self, *markers: str, anywhere: bool = False) -> None:
        super().__init__()
        self.markers, self.anywhere, self.count = markers, anywhere, 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hit = any((m in message) if self.anywhere else message.startswith(m) for m in self.markers)
        self.count += hit
        return not hit


@contextmanager
def dropped(*markers: str, anywhere: bool = False) -> Iterator[DropLines]:
    """Drop the matching lines of Ultralytics' logger inside the block; the filter says how many there were."""
    lines = DropLines(*markers, anywhere=anywhere)
    LOGGER.addFilter(lines)
    try:
        yield lines
    finally:
        LOGGER.removeFilter(lines)


SETTINGS_LINE = "agnostic_nms="  # in the settings line Ultralytics' trainer prints at its start
FREEZING = "Freezing layer '"

"""Count the openai SDK's own retry attempts, in the client's process, without touching clients.

A retry after a connection error never reaches the server (openai 2.x retries a closed
transport twice with backoff), so ``x-stainless-retry-count`` cannot count it. Every line of
the SDK announces each retry on its module logger before sleeping, in ``_sleep_for_retry``
(1.x and 2.x: ``log.info("Retrying request to %s in %f seconds", ...)``, 3.x:
``log.info("Retrying request in %f seconds (retry %i of %s)", ...)`` in
``openai/_base_client.py``). :class:`SdkRetryCounter` attaches a filter to that logger and
counts those records per thread (a sync call retries in its caller's thread).

To see INFO records the logger's level may have to be lowered; the filter then drops every
record below the level that was in force before, so what the process logs is unchanged.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Final

__all__ = ["SDK_LOGGER", "SdkRetryCounter"]

SDK_LOGGER: Final = "openai._base_client"
_RETRY_PREFIX: Final = "Retrying request"


class SdkRetryCounter(logging.Filter):
    """A context manager: while active, counts SDK retry announcements per thread."""

    def __init__(self, logger: str = SDK_LOGGER) -> None:
        super().__init__()
        self._logger = logging.getLogger(logger)
        self._counts = threading.local()
        self._was_level = logging.NOTSET
        self._passes = logging.NOTSET  # records below this were not logged before

    def __enter__(self) -> SdkRetryCounter:
        self._was_level = self._logger.level
        self._passes = self._logger.getEffectiveLevel()
        if self._passes > logging.INFO:
            self._logger.setLevel(logging.INFO)
        self._logger.addFilter(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._logger.removeFilter(self)
        self._logger.setLevel(self._was_level)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(_RETRY_PREFIX):
            self._counts.value = self.count() + 1
        return record.levelno >= self._passes

    def count(self) -> int:
        """Retries counted in the calling thread since its last :meth:`take`."""
        value: int = getattr(self._counts, "value", 0)
        return value

    def take(self) -> int:
        """The calling thread's count, reset to 0."""
        value = self.count()
        self._counts.value = 0
        return value

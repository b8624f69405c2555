"""SdkRetryCounter: counts the SDK's retry announcements per thread, leaves logging as it was."""

from __future__ import annotations

import logging
import threading

import pytest

from harness.sdk_retries import SDK_LOGGER, SdkRetryCounter

NAME = "harness-test.sdk"


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def logger() -> logging.Logger:
    log = logging.getLogger(NAME)
    log.setLevel(logging.NOTSET)
    log.propagate = False
    log.handlers = [Keep()]
    return log


def test_counts_per_thread_and_leaves_output_and_level_unchanged(logger: logging.Logger) -> None:
    assert logger.getEffectiveLevel() == logging.WARNING
    seen: dict[str, int] = {}
    with SdkRetryCounter(NAME) as counter:
        assert logger.level == logging.INFO  # lowered so INFO records reach the filter
        logger.info("Retrying request to %s in %f seconds", "/chat/completions", 0.4)
        logger.info("Retrying request in %f seconds (retry %i of %s)", 0.8, 2, 2)
        logger.info("Sending HTTP Request: %s", "POST")

        def other() -> None:
            logger.info("Retrying request in %f seconds (retry %i of %s)", 0.4, 1, 2)
            seen["other"] = counter.take()

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        logger.warning("Retrying request in %f seconds (retry %i of %s)", 1.0, 1, 2)
        seen["main"] = counter.take()
        seen["again"] = counter.take()
    assert seen == {"other": 1, "main": 3, "again": 0}
    assert logger.level == logging.NOTSET and logger.filters == []
    handler = logger.handlers[0]
    assert isinstance(handler, Keep)
    # Only what WARNING let through before: the INFO records were counted, not logged.
    assert handler.messages == ["Retrying request in 1.000000 seconds (retry 1 of 2)"]


def test_a_logger_already_at_debug_keeps_logging_everything(logger: logging.Logger) -> None:
    logger.setLevel(logging.DEBUG)
    with SdkRetryCounter(NAME) as counter:
        logger.debug("1 retry left")
        logger.info("Retrying request in %f seconds (retry %i of %s)", 0.5, 1, 2)
        assert counter.take() == 1
    assert logger.level == logging.DEBUG
    handler = logger.handlers[0]
    assert isinstance(handler, Keep)
    assert handler.messages == [
        "1 retry left",
        "Retrying request in 0.500000 seconds (retry 1 of 2)",
    ]


def test_the_default_logger_is_the_sdks() -> None:
    import openai._base_client

    assert openai._base_client.log is logging.getLogger(SDK_LOGGER)

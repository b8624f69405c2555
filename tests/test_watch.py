"""``harness watch``'s core without a process: durations, endpoints, thresholds, the loop on a
fake clock, rendering, and the command line's usage errors (in-process, exit 2)."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from harness.cli import main
from harness.interrupts import Interrupted
from harness.report.watch import (
    conclusion,
    json_line,
    live_view,
    render_watch_html,
    render_watch_markdown,
    write_watch_reports,
)
from harness.sockets import Endpoint, endpoint_key, parse_endpoint
from harness.watch import (
    Counts,
    ProcessGone,
    Sample,
    Series,
    Thresholds,
    WatchSummary,
    parse_duration,
    watch,
)

ROOT = Path(__file__).resolve().parent.parent
EP = "127.0.0.1:8080"


def sample(t: float, close_wait: int, *, fds: int = 10, established: int = 0) -> Sample:
    counts = {EP: Counts(established, close_wait, 0)} if close_wait or established else {}
    return Sample(t=t, time=f"T{t}", fds=fds, endpoints=counts)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1h", 3600), ("500ms", 0.5), ("2", 2), ("1.5s", 1.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "10x", "-1s", "1h30m", "inf", "nan", "s", "1 d"])
def test_bad_durations_say_what_is_allowed(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration; use e\.g\. 30s, 10m, 1h or 500ms"):
        parse_duration(text)


def test_endpoints_are_addresses_as_the_kernel_has_them() -> None:
    assert endpoint_key("::ffff:10.0.0.1", 443) == "10.0.0.1:443"
    assert endpoint_key("::1", 80) == "[::1]:80"
    assert parse_endpoint("[::1]:80") == Endpoint("[::1]", 80)
    assert parse_endpoint("*:443").matches("10.0.0.1:443")
    assert not parse_endpoint("*:443").matches("10.0.0.1:80")
    assert parse_endpoint("10.0.0.1:443").matches("10.0.0.1:443")
    assert not parse_endpoint("10.0.0.1:443").matches("10.0.0.2:443")


@pytest.mark.parametrize("text", ["localhost:80", "1.2.3.4", "1.2.3.4:0", "1.2.3.4:70000", ":80"])
def test_bad_endpoints(text: str) -> None:
    with pytest.raises(ValueError, match="is not an endpoint; use IP:PORT"):
        parse_endpoint(text)


def test_growth_is_judged_within_the_sliding_window() -> None:
    series = Series(Thresholds(max_growth=2, over_s=2.0))
    crossed = [series.add(sample(t, cw)) for t, cw in enumerate([0, 1, 2, 3, 1, 1, 4, 4, 4])]
    # growth: the count less the lowest of the samples in the 2 s before (itself included)
    assert series.growths == [0, 1, 2, 2, 0, 0, 3, 3, 0]
    assert crossed == [(), (), (), (), (), (), ("max_growth",), ("max_growth",), ()]
    assert series.first_crossed == {"max_growth": 6}


def test_without_a_window_growth_is_since_the_lowest_count_so_far() -> None:
    series = Series(Thresholds(max_close_wait=3, max_growth=10))
    for t, cw in enumerate([2, 0, 5, 1, 4]):
        series.add(sample(t, cw))
    assert series.growths == [0, 0, 5, 1, 4]
    assert series.crossed == [(), (), ("max_close_wait",), (), ("max_close_wait",)]


def _run(samples: list[Sample | BaseException], duration_s: float | None) -> tuple[object, Series]:
    """The loop on a fake clock that moves only when it waits."""
    now = [0.0]
    feed = iter(samples)
    asked: list[float] = []

    def sampler(t: float) -> Sample:
        asked.append(t)
        item = next(feed)
        if isinstance(item, BaseException):
            raise item
        return item

    def wait(seconds: float) -> None:
        now[0] += seconds + 0.25  # always late: missed ticks are skipped, not made up

    series = Series()
    ended = watch(sampler, interval_s=1.0, duration_s=duration_s, series=series,
                  on_sample=lambda s: None, clock=lambda: now[0], wait=wait)  # fmt: skip
    return (ended, asked), series


def test_the_loop_samples_on_schedule_until_the_duration() -> None:
    (ended, asked), series = _run([sample(t, 0) for t in range(10)], duration_s=3.0)
    assert ended == ("duration", "")
    assert asked == [0.0, 1.25, 2.25, 3.25]  # the last at or after 3 s ends it
    assert len(series.samples) == 4


def test_the_loop_ends_when_the_process_does_or_on_a_signal() -> None:
    (ended, _), series = _run([sample(0, 0), ProcessGone("pid 7 exited")], duration_s=None)
    assert ended == ("exited", "pid 7 exited") and len(series.samples) == 1
    (ended, _), _ = _run([sample(0, 0), Interrupted(signal.SIGTERM)], duration_s=None)
    assert ended == ("interrupted", "SIGTERM")


def _summary(values: list[int], ended: str = "duration", **limits: int) -> WatchSummary:
    series = Series(Thresholds(**limits))  # type: ignore[arg-type]
    for t, cw in enumerate(values):
        series.add(sample(float(t), cw, fds=10 + cw, established=1))
    return WatchSummary(4242, "2026-12-06T00:00:00+00:00", 1.0, series, ended, "pid 4242 exited")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "ended", "limits", "code"),
    [
        ([0, 1, 2], "duration", {"max_close_wait": 2}, 0),
        ([0, 1, 3], "duration", {"max_close_wait": 2}, 1),
        ([0, 1, 3], "exited", {"max_close_wait": 2}, 1),  # a crossing tells more than the end
        ([0, 1, 2], "exited", {"max_close_wait": 2}, 3),
        ([0, 5, 9], "interrupted", {}, 0),  # nothing judged
    ],
)
def test_exit_codes(values: list[int], ended: str, limits: dict[str, int], code: int) -> None:
    assert _summary(values, ended, **limits).exit_code == code


def test_the_documented_json_fields_are_the_real_ones() -> None:
    summary = _summary([0, 2], max_close_wait=1)
    line = json.loads(json_line(summary.pid, summary.series, 1))
    assert line == {
        "pid": 4242, "t": 1.0, "time": "T1.0", "fds": 12, "established": 1, "close_wait": 2,
        "other": 0, "close_wait_growth": 2, "crossed": ["max_close_wait"],
        "endpoints": {EP: {"established": 1, "close_wait": 2, "other": 0}},
    }  # fmt: skip
    doc = (ROOT / "docs" / "watch.md").read_text(encoding="utf-8")
    section = doc.split("## JSON Lines", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)`", section, re.M))
    assert documented == {*line, *line["endpoints"][EP]}


def test_the_live_view_and_the_reports(tmp_path: Path) -> None:
    summary = _summary([0, 1, 4], max_growth=2)
    view = live_view(4242, summary.series, 1.0, 200)
    assert view.splitlines()[1:4] == [
        "endpoint        ESTABLISHED  CLOSE_WAIT  other  CW peak  EST peak",
        "127.0.0.1:8080            1           4      0        4         1",
        "CLOSE_WAIT growth since the start: +4",
    ]
    assert "CLOSE_WAIT growth at most 2 since the start: CROSSED at 2.0 s (4)" in view
    markdown = render_watch_markdown(summary)
    assert "| 127.0.0.1:8080 | 1 | 4 | 0 | 4 | 1 |" in markdown
    html = render_watch_html(summary)
    assert html.count("<svg") == 3  # CLOSE_WAIT, ESTABLISHED, fds
    assert 'data-variant="127.0.0.1:8080"' in html and 'data-variant="fds"' in html
    out = write_watch_reports(summary, tmp_path / "new" / "dir")
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "samples.jsonl", "summary.md"]


def test_a_long_watch_is_charted_by_its_peaks() -> None:
    html = render_watch_html(_summary([0] * 999 + [7]))
    points = re.search(r'data-variant="127\.0\.0\.1:8080" points="([^"]+)"', html)
    assert points is not None and len(points.group(1).split()) == 250  # 4 samples a point
    assert "peak of each 4" in html and ": 0 0 0" in html and html.count(" 7</title>") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "10x"], "argument --duration: '10x' is not a duration"),
        (["--interval", "0"], "argument --interval: '0' is not a duration"),
        (["--max-growth", "1", "--over", "1h30m"], "argument --over: '1h30m' is not a duration"),
        (["--over", "10m"], "--over is the window of --max-growth; give --max-growth N too"),
        (["--max-close-wait", "-1"], "argument --max-close-wait: '-1' is not a whole number"),
        (["--endpoint", "example.com:443"], "'example.com:443' is not an endpoint"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["watch", "--pid", "1", *args])
    except SystemExit as exc:  # argparse's errors exit from the parser
        code = int(str(exc.code))
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("harness watch: error: ") and message in err


def test_a_watch_that_ended_before_its_first_sample_says_so() -> None:
    (ended, _), series = _run([ProcessGone("pid 7 exited")], duration_s=None)
    assert ended == ("exited", "pid 7 exited") and series.points == []
    summary = WatchSummary(7, "", 1.0, series, "exited", "pid 7 exited")
    assert conclusion(summary) == [
        "watch: pid 7: no sample taken; ended: pid 7 exited while watched",
        "exit 3: the process ended",
    ]


def test_peaks_are_kept_as_samples_come() -> None:
    series = Series()
    for t, (cw, est, fds) in enumerate([(1, 3, 20), (4, 0, 12), (2, 1, 30)]):
        series.add(sample(float(t), cw, established=est, fds=fds))
    assert (series.peaks[EP], series.total_peak) == (Counts(3, 4, 0), Counts(3, 4, 0))
    assert (series.fds_peak, series.growth_peak, series.endpoints()) == (30, 3, [EP])

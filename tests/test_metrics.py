"""The Prometheus text the results API writes."""

from results_api.metrics import render


def test_counters_are_written_exactly() -> None:
    text = render(
        [
            ("a_total", "counter", "big", 2_000_002),
            ("b", "gauge", "fraction", 0.25),
            ("c", "gauge", "flag", True),
        ]
    )
    assert text.splitlines() == [
        "# HELP a_total big",
        "# TYPE a_total counter",
        "a_total 2000002",
        "# HELP b fraction",
        "# TYPE b gauge",
        "b 0.25",
        "# HELP c flag",
        "# TYPE c gauge",
        "c 1",
    ]

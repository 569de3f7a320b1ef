"""The Prometheus text the worker and the results API write."""

from inferq.prometheus import render


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


def test_labelled_values_are_escaped() -> None:
    text = render([("jobs_total", "counter", "per model", [({"model": 'a"b\\c'}, 3), ({}, 1)])])
    assert text.splitlines() == [
        "# HELP jobs_total per model",
        "# TYPE jobs_total counter",
        'jobs_total{model="a\\"b\\\\c"} 3',
        "jobs_total{} 1",
    ]

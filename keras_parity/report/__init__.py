"""The report: the grid and the failures (grid.py), the full table, JSON and JUnit (render.py),
and merging the results of several machines (merge.py)."""

from keras_parity.report.render import (  # noqa: F401
    print_report,
    table,
    write_json,
    write_junit,
    write_step_summary,
    write_table,
)

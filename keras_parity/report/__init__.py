"""The report: the table, the failure lines, JSON and JUnit (render.py), and merging the results
of several machines (merge.py)."""

from keras_parity.report.render import print_report, table, write_json, write_junit  # noqa: F401

"""Which reliance columns a report table shows: the registry's reliance and localisation
methods in column order (an opt-in method only when some report ran it), then any other
method a saved report carries (one audited by a method this process does not know)."""

from __future__ import annotations

from collections.abc import Iterable

from relyscope.audits.registry import default_methods, unit_score_columns
from relyscope.report_model import Report


def reliance_columns(reports: Iterable[Report]) -> list[str]:
    reports = list(reports)
    ran = {name for report in reports for name in report.methods}
    defaults = set(default_methods())
    columns = [name for name in unit_score_columns() if name in defaults or name in ran]
    for report in reports:
        for unit in report.units:
            columns += [name for name in unit.reliance if name not in columns]
    return columns

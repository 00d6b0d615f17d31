"""Which reliance columns a report table shows: the registry's reliance and localisation
methods in column order, then any other method a saved report carries (one audited by a
method this process does not know)."""

from __future__ import annotations

from collections.abc import Iterable

from relyscope.audits.registry import unit_score_columns
from relyscope.report_model import Report


def reliance_columns(reports: Iterable[Report]) -> list[str]:
    columns = list(unit_score_columns())
    for report in reports:
        for unit in report.units:
            columns += [name for name in unit.reliance if name not in columns]
    return columns

"""Gate outputs: JUnit XML (one testcase per metric), a Markdown summary for a PR comment, JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from relyscope.gate.compare import GateResult


def junit_xml(result: GateResult) -> str:
    failures = sum(m.regressed for m in result.metrics)
    suite = ET.Element("testsuite", name="relyscope.gate", tests=str(len(result.metrics)),
                       failures=str(failures), errors="0", skipped="0")
    for metric in result.metrics:
        case = ET.SubElement(suite, "testcase", classname="relyscope.gate", name=metric.name)
        if metric.regressed:
            failure = ET.SubElement(case, "failure", message=metric.message, type="regression")
            failure.text = metric.message
        else:
            ET.SubElement(case, "system-out").text = metric.message
        if metric.warning:
            ET.SubElement(case, "system-err").text = f"warning: {metric.warning}"
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def gate_markdown(result: GateResult) -> str:
    verdict = "✅ passed" if result.passed else "❌ regression"
    if result.warnings:
        verdict += " ⚠️ evaluation set too small to detect the tolerance"
    confidence = f"{result.settings.confidence:.0%}"
    lines = [f"## relyscope gate: {verdict}", "",
             f"{result.queries} paired queries; intervals are {confidence} paired bootstrap "
             f"intervals of the difference, candidate - baseline ({result.settings.resamples} "
             "resamples). A metric fails when its whole interval is beyond the tolerance; "
             "`fails beyond` is the smallest change that would fail at this noise level.", "",
             f"| metric | baseline | candidate | difference | {confidence} CI of the difference "
             "| tolerance | fails beyond | status |",
             "|---|---|---|---|---|---|---|---|"]
    for m in result.metrics:
        interval = "—" if m.interval is None else f"[{m.interval[0]:+.3f}, {m.interval[1]:+.3f}]"
        status = "regressed" if m.regressed else "ok"
        if m.underpowered:
            status += " ⚠️ too few queries"
        lines.append(f"| {m.name} | {_num(m.baseline)} | {_num(m.candidate)} | "
                     f"{'—' if m.difference is None else f'{m.difference:+.3f}'} | {interval} | "
                     f"{_num(m.tolerance)} | {_num(m.detectable)} | {status} |")
    if result.warnings:
        lines += ["", "**Warnings**", ""] + [f"- ⚠️ {w}" for w in result.warnings]
    if result.missing:
        lines += ["", f"Cases in only one run (not compared): {', '.join(result.missing)}"]
    return "\n".join(lines) + "\n"


def write_gate_outputs(result: GateResult, *, junit: str | None, markdown: str | None,
                       json_path: str | None) -> None:
    for path, text in ((junit, junit_xml(result) if junit else ""),
                       (markdown, gate_markdown(result) if markdown else ""),
                       (json_path, json.dumps(result.to_dict(), indent=2) + "\n"
                        if json_path else "")):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text, encoding="utf-8")

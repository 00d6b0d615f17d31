"""Reports readable without the case file, checked in a real browser.

Each unit carries its text (bounded) and its char span in its parent source, through JSON and
gRPC. The HTML report, rendered by headless Chromium (Debian's package), shows every unit of
every source highlighted in the attention view and in the reliance view, every claim of the
answer highlighted with its citations pointing at units on the page, and each tool call with
its ablation effects. The DOM checked is the one the browser dumps, not the HTML written."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from relyscope.audits import run_audit
from relyscope.case import Case
from relyscope.config import AuditConfig
from relyscope.models import CausalLM
from relyscope.protocol.convert import report_from_proto, report_to_proto
from relyscope.report import write_html
from relyscope.report_model import SNIPPET_CHARS, Report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; "
                             ".ci/run installs it)")

LONG = " ".join(f"Filler sentence number {i} says nothing about guilds." for i in range(12))
SOURCES = {
    "d0": "The Orrin river floods every spring. Farms in the valley are covered with silt.",
    "d1": "The Zelk guild was founded by Anna Roth. It was founded in the harbour town of "
          "Mirel in 1820.",
    "d2": "Copper prices rose sharply last year.",
    "long": LONG,
}


def case() -> Case:
    return Case.from_dict({
        "id": "zelk-readable", "system": "Answer the question using the context.",
        "query": "Who founded the Zelk guild, and where?",
        "sources": [{"id": k, "text": v, "title": f"title of {k}"} for k, v in SOURCES.items()],
        "tool_calls": [{"id": "call_1", "name": "get_temperature",
                        "arguments": {"city": "Mirel"}, "output": "18 degrees Celsius"}],
        "answer": "The Zelk guild was founded by Anna Roth. It was founded in Mirel."})


@pytest.fixture(scope="module")
def reports(tiny_lm: CausalLM) -> dict[str, Report]:
    """Real audits (tiny random model: real structure, meaningless scores) at both
    granularities, with per-claim attribution."""
    return {granularity: run_audit(case(), tiny_lm, AuditConfig(
        methods=("attention", "loo", "tools"), granularity=granularity, claims="auto"))
        for granularity in ("sentence", "source")}


# -- unit texts and spans --------------------------------------------------------------------


@pytest.mark.parametrize("granularity", ["sentence", "source"])
def test_every_unit_carries_its_text_and_its_span_in_the_parent(reports: dict[str, Report],
                                                                granularity: str) -> None:
    report = reports[granularity]
    outputs = {"call_1": "18 degrees Celsius"}
    assert {u.kind for u in report.units} == {granularity, "tool_output"}
    for unit in report.units:
        parent = outputs.get(unit.id) or SOURCES[unit.parent or unit.id]
        assert unit.char_span is not None and unit.text is not None
        start, end = unit.char_span
        if len(parent[start:end]) <= SNIPPET_CHARS:
            assert unit.text == parent[start:end]
        else:  # a bounded snippet: the start of the text and an ellipsis
            assert unit.text.endswith("…") and len(unit.text) <= SNIPPET_CHARS + 1
            assert parent[start:end].startswith(unit.text[:-1])
    if granularity == "sentence":
        d1 = [u for u in report.units if u.parent == "d1"]
        assert [u.text for u in d1] == ["The Zelk guild was founded by Anna Roth.",
                                        "It was founded in the harbour town of Mirel in 1820."]
        assert d1[1].char_span == (41, 93) and d1[0].title == "title of d1"
    else:
        long = report.unit("long")
        assert long.char_span == (0, len(LONG)) and len(LONG) > SNIPPET_CHARS
        assert long.text is not None and long.text.endswith("…")
    assert report.unit("call_1").title == 'get_temperature({"city": "Mirel"})'


def test_unit_texts_and_spans_survive_json_and_grpc(reports: dict[str, Report]) -> None:
    report = reports["sentence"]
    assert Report.from_dict(report.to_dict()).units == report.units
    back = report_from_proto(report_to_proto(report))
    assert [u.model_dump() for u in back.units] == [u.model_dump() for u in report.units]


# -- the page in a browser --------------------------------------------------------------------


class Dom(HTMLParser):
    """The unit marks, claim spans, ids and links of a dumped DOM, with their text."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[dict[str, Any]] = []
        self.claims: list[dict[str, Any]] = []
        self.ids: set[str] = set()
        self.links: list[str] = []
        self._open: list[dict[str, Any] | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if "id" in values:
            self.ids.add(values["id"])
        if tag == "a" and values.get("href", "").startswith("#"):
            self.links.append(values["href"][1:])
        item: dict[str, Any] | None = None
        if tag == "mark" and "data-unit" in values:
            item = {**values, "text": ""}
            self.marks.append(item)
        elif tag == "span" and "data-claim" in values:
            item = {**values, "text": ""}
            self.claims.append(item)
        self._open.append(item)

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for item in self._open:
            if item is not None:
                item["text"] += data


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120)


def browser_dom(page: Path) -> Dom:
    done = chromium("--dump-dom", page.resolve().as_uri())
    assert done.returncode == 0 and "</html>" in done.stdout, done.stderr[-2000:]
    dom = Dom()
    dom.feed(done.stdout)
    return dom


def alpha(style: str) -> float:
    match = re.search(r"rgba\(\d+, ?\d+, ?\d+, ?([\d.]+)\)", style)
    assert match, style
    return float(match.group(1))


@needs_chromium
def test_the_browser_shows_every_unit_in_both_views_and_every_claim(
        reports: dict[str, Report], tmp_path: Path) -> None:
    listed = [reports["sentence"], reports["source"]]
    page = tmp_path / "report.html"
    write_html(listed, page)
    dom = browser_dom(page)

    units_seen = 0
    for number, report in enumerate(listed, 1):
        anchor = f"r{number}"
        method = next(m for m in ("loo", "tools") if any(
            u.reliance.get(m) is not None for u in report.units))
        for unit in report.units:
            views = [m for m in dom.marks
                     if m["data-report"] == anchor and m["data-unit"] == unit.id]
            assert sorted(m["data-view"] for m in views) == ["attention", "reliance"], unit.id
            marks = {m["data-view"]: m for m in views}
            assert marks["attention"]["id"] == f"{anchor}-unit-{unit.id}"  # citations land here
            for mark in views:
                assert mark["text"] == unit.text
            share = unit.provenance.get("attention_share")
            assert (alpha(marks["attention"]["style"]) > 0) == bool(share and share > 0)
            score = unit.reliance.get(method)
            assert (alpha(marks["reliance"]["style"]) > 0) == bool(score and score > 0)
            units_seen += 1
        assert report.claims, "the audit asked for claims"
        for claim in report.claims:
            spans = [c for c in dom.claims
                     if c["data-report"] == anchor and c["data-claim"] == str(claim.index)]
            assert len(spans) == 1 and spans[0]["text"] == claim.text
            assert spans[0]["id"] == f"{anchor}-claim-{claim.index}"
            assert claim.verdict in spans[0]["class"].split()
            for uid in claim.citations:
                assert f"{anchor}-unit-{uid}" in dom.links
    assert units_seen == sum(len(r.units) for r in listed)
    assert len(dom.marks) == 2 * units_seen  # no mark without a unit of the report
    assert len(dom.claims) == sum(len(r.claims) for r in listed)
    assert all(link in dom.ids for link in dom.links), "a citation points at nothing"
    page_text = page.read_text()
    assert "tool output replaced by" in page_text and "get_temperature(" in page_text


@needs_chromium
def test_a_report_without_texts_or_claims_still_renders(tmp_path: Path) -> None:
    bare = Report.from_dict({"case_id": "old", "answer": "Anna Roth.", "answer_logprob": -2.0,
                             "answer_tokens": 3, "units": [
                                 {"id": "d0", "kind": "source", "reliance": {"loo": 1.5},
                                  "provenance": {"attention_share": 1.0}}]})
    page = tmp_path / "old.html"
    write_html([bare], page)
    dom = browser_dom(page)
    assert {m["data-view"] for m in dom.marks} == {"attention", "reliance"}
    assert all(m["text"] == "(text not in this report)" for m in dom.marks)
    assert dom.claims == []


@needs_chromium
def test_the_browser_takes_a_screenshot_of_the_report(reports: dict[str, Report],
                                                      tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    write_html([reports["sentence"]], page)
    shot = tmp_path / "shot.png"
    done = chromium(f"--screenshot={shot}", "--window-size=1200,1600", page.resolve().as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

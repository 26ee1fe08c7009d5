"""The benchmark harness's report: sections, targets and the summary of RESULTS.md."""

from __future__ import annotations

from pathlib import Path

from bench.__main__ import available
from bench.report import Section, Target, percentile, write_section


def test_sections_are_replaced_in_place_and_the_summary_lists_every_target(
    tmp_path: Path,
) -> None:
    results = tmp_path / "RESULTS.md"
    first = Section(
        "alpha",
        "Alpha: something fast",
        "Body of alpha.",
        [Target("speed", "≤ 1 ms", "0.5 ms", True), Target("size", "≤ 1 MB", "2 MB", False)],
        seconds=12.3,
        load_before=0.5,
        load_after=1.5,
    )
    write_section(first, results)
    write_section(Section("beta", "Beta: context only", "Body of beta."), results)
    quick = Section(
        "alpha",
        "Alpha: something fast",
        "Body of alpha, again.",
        [Target("speed", "≤ 1 ms", "0.7 ms", True), Target("trend", "flat", "+1 MB", None)],
        quick=True,
    )
    write_section(quick, results)
    text = results.read_text()
    assert text.startswith("# Benchmark results")
    assert text.count("<!-- section:alpha -->") == 1 and "Body of alpha, again." in text
    assert "Body of alpha." not in text
    summary = text.split("<!-- /summary -->")[0]
    assert "| [alpha](#alpha-something-fast) (quick) | speed | ≤ 1 ms | 0.7 ms | yes |" in summary
    assert "| trend | flat | +1 MB | not judged (quick run) |" in summary
    assert "| [beta](#beta-context-only) | - | no SPEC §6 target | | |" in summary
    assert "size" not in summary  # the replaced section's old targets are gone
    assert "No SPEC §6 target: measured for context." in text
    # Rewriting changes nothing else: the file is stable under repeated writes.
    write_section(quick, results)
    again = results.read_text()
    strip = lambda t: [line for line in t.splitlines() if " UTC · " not in line]  # noqa: E731
    assert strip(again) == strip(text)


def test_a_section_shows_its_duration_and_the_load_around_it() -> None:
    section = Section("x", "X", "body", [Target("t", "g", "m", False)], seconds=61.2)
    section.load_before, section.load_after = 0.4, 2.25
    rendered = section.render()
    assert "full mode, 61 s, load average 0.4 before / 2.2 after" in rendered
    assert "| t | g | m | **no** |" in rendered


def test_every_benchmark_module_has_a_title_and_a_run_function() -> None:
    import importlib

    names = available()
    assert {"plugin_cost", "flush_throughput", "graphql_latency", "memory", "soak"} <= set(names)
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        assert isinstance(module.TITLE, str) and module.TITLE
        assert callable(module.run)


def test_percentile_interpolates() -> None:
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert 4.7 < percentile(list(range(1, 6)), 95) <= 5

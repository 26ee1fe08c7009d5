"""Run the benchmarks: `python -m bench [--quick] [name ...]`."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import pkgutil
import sys
import time
from pathlib import Path

from .report import RESULTS, Section, load_average, write_section


def available() -> list[str]:
    here = Path(__file__).parent
    skip = {"report", "__main__", "__init__"}
    return sorted(
        m.name
        for m in pkgutil.iter_modules([str(here)])
        if m.name not in skip and not m.name.startswith("_")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, under 2 minutes")
    parser.add_argument("names", nargs="*", help=f"which to run (default all): {available()}")
    args = parser.parse_args(argv)
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {available()}")
    durations: dict[str, float] = {}
    failed: list[str] = []
    begun = time.perf_counter()
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        started = time.perf_counter()
        before = load_average()
        print(f"== {name}: {module.TITLE}", flush=True)
        outcome = module.run(args.quick)
        section: Section = asyncio.run(outcome) if inspect.isawaitable(outcome) else outcome
        section.quick = args.quick
        section.seconds = time.perf_counter() - started
        section.load_before, section.load_after = before, load_average()
        write_section(section)
        print(section.render(), flush=True)
        durations[name] = section.seconds
        failed += [f"{name}: {t.name}" for t in section.targets if t.met is False]
        print(f"== {name} done in {section.seconds:.1f} s", flush=True)
    total = time.perf_counter() - begun
    print(f"\n== {len(names)} benchmarks in {total:.0f} s ({'quick' if args.quick else 'full'}):")
    for name, seconds in durations.items():
        print(f"   {name:<20} {seconds:6.1f} s")
    print(f"== results in {RESULTS}")
    if failed:
        print("== targets not met:\n   " + "\n   ".join(failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())

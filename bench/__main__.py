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

from .report import Section, write_section


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
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        started = time.perf_counter()
        print(f"== {name}: {module.TITLE}", flush=True)
        outcome = module.run(args.quick)
        section: Section = asyncio.run(outcome) if inspect.isawaitable(outcome) else outcome
        section.quick = args.quick
        write_section(section)
        print(section.render(), flush=True)
        print(f"== {name} done in {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

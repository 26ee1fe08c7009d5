"""Benchmarks: `python -m bench [--quick] [name ...]` (also `make bench`, `make bench-quick`).

Each measurement is a module in this package exposing::

    TITLE: str
    async def run(quick: bool) -> Section   # or a plain function returning a Section

A run measures each subject side by side with its baseline in the same process run
(ratios, because these machines are noisy) and rewrites that module's section of
`bench/RESULTS.md`, keeping the other sections.
"""

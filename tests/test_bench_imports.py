"""Every benchmark still imports: they run by hand, so a refactor that renames what one uses breaks it unnoticed."""

import importlib
import pkgutil

import pytest

import bench

MODULES = sorted(m.name for m in pkgutil.iter_modules(bench.__path__, "bench."))


def test_the_benchmarks_are_found():
    assert {"bench.ladder", "bench.publish", "bench.quality", "bench.rungs", "bench.verdicts"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_benchmark_imports(module: str):
    importlib.import_module(module)

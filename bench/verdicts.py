"""A benchmark's verdict table: each row a figure, its goal and PASS / FAIL / n/a; shared by every bench.

A goal not measured in a run (a feature not built yet, a phase skipped) is n/a: neither a pass it did not
earn nor a failure of something that was never tried. A bench exits 1 when any row FAILs.
"""

from dataclasses import dataclass

from rich.table import Table


@dataclass
class Row:
    """One line of the table. passed None: not measured in this run (neither PASS nor FAIL)."""

    what: str
    figure: str
    goal: str
    passed: bool | None

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "n/a"}[self.passed]


def at_most(what: str, value: float | None, limit: float, unit: str = " s", fmt: str = ".1f") -> Row:
    figure = "not measured" if value is None else f"{value:{fmt}}{unit}"
    return Row(what, figure, f"<= {limit:g}{unit}", None if value is None else value <= limit)


def at_least(what: str, value: float | None, limit: float, unit: str = "x", fmt: str = ".2f") -> Row:
    figure = "not measured" if value is None else f"{value:{fmt}}{unit}"
    return Row(what, figure, f">= {limit:g}{unit}", None if value is None else value >= limit)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def render(rows: list[Row], title: str) -> Table:
    table = Table(title=title)
    for name in ("measure", "figure", "goal", "result"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    colour = {"PASS": "green", "FAIL": "red", "n/a": "yellow"}
    for row in rows:
        table.add_row(row.what, row.figure, row.goal, f"[{colour[row.verdict]}]{row.verdict}[/]")
    return table

"""Copy the demo report's tables into README.md between the demo-table markers.

The README quotes the demo's numbers; this script is how they get there, so they are never
typed by hand.

Usage:
    python scripts/readme_table.py runs/demo-scifact/report/report.md
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

START, END = "<!-- demo-table:start -->", "<!-- demo-table:end -->"


def extract(report: str) -> str:
    """The report's sections from the header list down to the agreement table."""
    keep = report.split("## Training curves")[0].strip()
    body = keep.split("\n", 1)[1].strip()  # drop the '# Distillation report' title
    return body.replace("## ", "#### ")  # sections of the README's demo section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--label", default="", help="a line saying which run this is")
    args = parser.parse_args()
    body = extract(args.report.read_text(encoding="utf-8"))
    if args.label:
        body = f"{args.label}\n\n{body}"
    readme = args.readme.read_text(encoding="utf-8")
    if START not in readme or END not in readme:
        raise SystemExit(f"{args.readme} has no {START} ... {END} block")
    block = f"{START}\n{body}\n{END}"
    args.readme.write_text(
        re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, readme, flags=re.S),
        encoding="utf-8",
    )
    print(f"updated {args.readme} from {args.report}")


if __name__ == "__main__":
    main()

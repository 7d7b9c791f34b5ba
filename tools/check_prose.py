"""Check that every number quoted in a notebook's prose comes from that notebook's own run.

    python tools/check_prose.py --execute            # run solutions/ on the cpu profile, then check
    python tools/check_prose.py --executed DIR       # check notebooks already executed into DIR
    python tools/check_prose.py --execute 05 11      # only these notebooks

A number in a markdown cell passes when it is **printed** by the notebook (stdout, or the text or
HTML of a result; rounding to the prose's precision, sign and percent allowed: "0.8" matches
0.806, "38 %" matches 0.38) or when it is a **setting** written in a code cell of the notebook
(e.g. ``steps = 1500``). Not checked, because they are not results: numbers inside inline code,
links and headings; citations (years after a name, arXiv ids, "Section 3.2", "Eq. 4",
"Algorithm 1", "Table 2", "Figure 3", "Theorem 1", "p. 5"); references to notebooks, sections,
cells, exercises and steps of the course ("notebook 04", "section 2", "exercise 3"); list
markers; LaTeX math unless it states a value (``\\approx``, ``\\pm``). Numbers that are facts of
the world (a paper's reported results, a dataset's size) go in ``tools/prose_facts.txt`` with
the notebook and a reason.

Exit status 1 lists each unbacked number with its notebook, cell and sentence.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FACTS = ROOT / "tools" / "prose_facts.txt"
NUMBER = re.compile(
    r"(?<![\w.^_])[-−+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-−+]?\d+)?(?:\s?%)?(?![\w])"
)
NOT_RESULTS = [  # spans of prose whose numbers are not results, removed before extracting
    r"`[^`]*`",  # inline code
    r"\]\([^)]*\)",  # link targets
    r"<!--.*?-->",
    r"arXiv:?\s*\d{4}\.\d{4,5}(v\d+)?",
    r"\b(?:[Ss]ections?|[Ss]ec\.|§|[Ee]qs?\.|[Ee]quations?|[Aa]lgorithms?|[Tt]ables?|[Ff]ig(?:ure)?s?\.?"
    r"|[Tt]heorems?|[Ll]emmas?|[Pp]ropositions?|[Cc]orollary|[Aa]ppendix|p\.|pp\.|[Cc]ells?"
    r"|[Nn]otebooks?|[Ee]xercises?|[Pp]arts?|[Bb]ug|[Cc]hapter|[Ll]ines?)"
    r"\s*\(?[A-Z]?\d+(?:\.\d+)*(?:[-–]\d+(?:\.\d+)*)?\)?(?:\s*(?:,|and|&|to|-|–)\s*\d+(?:\.\d+)*)*",
    r"\b(?:et al\.?|[A-Z][a-z]+|and [A-Z][a-z]+),?\s\(?(?:19|20)\d\d[a-z]?\)?",  # "et al. 2014"
    r"\((?:19|20)\d\d[a-z]?\)",
    r"\bNext:\s*\d+",  # the next notebook
    r"\b(?:LNCS|vol\.|[Vv]olume|no\.)\s*\d+",
    r"(?<![\d.])(?:199\d|20[0-2]\d)(?![\d.]|\s*±)",  # a year
    r"\d+\s*[×x]\s*\d+(?:\s*[×x]\s*\d+)*",  # a size, 28×28
]
MATH = re.compile(r"\$\$.*?\$\$|\$[^$]+\$", re.S)
HEADING_OR_LIST = re.compile(r"^\s*(?:#+\s*[\d.]*|\d+\.\s|[-*]\s)", re.M)


@dataclass(frozen=True)
class Quoted:
    notebook: str
    cell: int
    text: str
    value: float
    decimals: int
    percent: bool
    sentence: str


def parse(token: str) -> tuple[float, int, bool]:
    """(value, decimals of the mantissa, is a percentage) of a number as written in prose."""
    t = token.replace("−", "-").replace(",", "").replace(" ", "")
    percent = t.endswith("%")
    t = t.rstrip("%")
    mantissa = re.split("[eE]", t)[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(re.split("[eE]", t)[1]) if re.search("[eE]", t) else 0
    return float(t), decimals - exponent, percent


def prose_numbers(notebook: str, cells: list[dict]) -> list[Quoted]:
    """The numbers quoted in the markdown cells (the first, the notebook's header, excepted)."""
    sources = ["".join(c["source"]) if c["cell_type"] == "markdown" else "" for c in cells]
    sections = set(re.findall(r"^#+\s*(\d+(?:\.\d+)+)", "\n".join(sources), re.M))
    blank = lambda m: " " * len(m.group(0))  # noqa: E731  (keeps every position in place)
    found = []
    for i, original in enumerate(sources[1:], start=1):
        text = HEADING_OR_LIST.sub(blank, MATH.sub(blank, original))
        for pattern in NOT_RESULTS:
            text = re.sub(pattern, blank, text, flags=re.S)
        for m in NUMBER.finditer(text):
            if m.group(0) in sections:  # "as in 3.3": a section of this notebook
                continue
            value, decimals, percent = parse(m.group(0))
            start = max(original.rfind(". ", 0, m.start()), original.rfind("\n", 0, m.start()))
            sentence = " ".join(original[start + 1 : m.end() + 60].split())
            found.append(Quoted(notebook, i, m.group(0), value, decimals, percent, sentence))
    return found


def output_text(cells: list[dict]) -> str:
    parts = []
    for cell in cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append("".join(out["text"]))
            data = out.get("data", {})
            for mime in ("text/plain", "text/html", "text/markdown"):
                if mime in data:
                    parts.append(re.sub(r"<[^>]+>", " ", "".join(data[mime])))
    return "\n".join(parts)


def numbers_in(text: str) -> list[float]:
    values = []
    for m in NUMBER.finditer(text.replace("−", "-")):
        try:
            values.append(parse(m.group(0))[0])
        except ValueError:
            continue
    return values


def backed(q: Quoted, printed: list[float], settings: set[float]) -> bool:
    tolerance = 0.5 * 10.0 ** (-q.decimals) * (1 + 1e-9)
    targets = [abs(q.value)] + ([abs(q.value) / 100] if q.percent else [])
    tolerances = [tolerance] + ([tolerance / 100] if q.percent else [])
    if abs(q.value) in settings:
        return True
    return any(
        abs(abs(o) - t) <= tol for o in printed for t, tol in zip(targets, tolerances, strict=True)
    )


def load_facts() -> dict[str, set[str]]:
    facts: dict[str, set[str]] = {}
    for line in FACTS.read_text().splitlines() if FACTS.exists() else []:
        if line.strip() and not line.startswith("#"):
            notebook, number = (part.strip() for part in line.split("|")[:2])
            facts.setdefault(notebook, set()).add(number)
    return facts


def check(executed: Path, facts: dict[str, set[str]], source: Path | None = None) -> list[Quoted]:
    """The numbers of ``source``'s prose (default: ``executed``'s own) that ``executed``'s outputs
    do not print and ``source``'s code does not set. Prose and code come from the source, so a
    prose edit is checked against the last run without running again."""
    printed = numbers_in(output_text(json.loads(executed.read_text())["cells"]))
    cells = json.loads((source or executed).read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    settings = {abs(v) for v in numbers_in(code)}
    allowed = facts.get(executed.name[:2], set())
    return [
        q
        for q in prose_numbers(executed.name, cells)
        if q.text not in allowed and not backed(q, printed, settings)
    ]


def execute(notebooks: list[Path], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "COURSE_PROFILE": "cpu", "COURSE_RUNS": str(out / "runs")}
    for nb in notebooks:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
             "--ExecutePreprocessor.timeout=1800", "--output-dir", str(out), str(nb)],
            check=True, env=env, cwd=ROOT, capture_output=True,
        )  # fmt: skip
        print(f"executed {nb.name} on the cpu profile in {time.perf_counter() - start:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("only", nargs="*", help="notebook numbers, e.g. 05 11 (default: all)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--execute", action="store_true", help="run them on the cpu profile first")
    group.add_argument("--executed", type=Path, help="a folder of already executed notebooks")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "prose")
    args = parser.parse_args()
    sources = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    sources = [p for p in sources if not args.only or p.name[:2] in args.only]
    if args.execute:
        execute(sources, args.out)
    folder = args.out if args.execute else args.executed
    missing = [p.name for p in sources if not (folder / p.name).exists()]
    if missing:
        print(f"{folder} lacks {', '.join(missing)}; run with --execute.", file=sys.stderr)
        return 2
    facts, failures = load_facts(), []
    for p in sources:
        failures += check(folder / p.name, facts, source=p)
    for q in failures:
        print(
            f"{q.notebook} cell {q.cell}: {q.text!r} is not printed by the notebook: {q.sentence}"
        )
    print(f"{len(sources)} notebooks, {len(failures)} numbers in the prose without an output.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

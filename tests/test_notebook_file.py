"""The committed notebook file, read as JSON (no kernel, no PDF): what print and version control
need from it.

- no execution timestamps in cell metadata (``make notebook`` runs tutorial/execute_notebook.py,
  which records none), so re-running changes only what changed;
- no visible code line longer than build_pdf.CODE_COLUMNS, so the PDF wraps none;
- the printed text never points the reader at a cell the PDF does not print;
- multi-letter subscripts in math are upright (``\\mathrm{max}``, not an italic m·a·x);
- the exercises are a section of their own, so the contents list them.
"""

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tutorial" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_pdf = _load("build_pdf")
execute_notebook = _load("execute_notebook")

HIDDEN_TAG = "remove-cell"
# Phrases that point at a cell, and which cell they mean (see _hidden_cell_references).
NAMED_HIDDEN = re.compile(r"\b(hidden|invisible|removed)\s+(code\s+)?cells?\b", re.I)
# Only definite references count: "the cell below" points at one cell, "a cell below" at none.
POINTS_BACK = re.compile(r"\b(the|this|that)\s+(code\s+)?cells?\s+above\b"
                         r"|\b(the|this|that)\s+(previous|preceding|last)\s+(code\s+)?cells?\b", re.I)
POINTS_FORWARD = re.compile(r"\b(the|this|that)\s+(code\s+)?cells?\s+below\b"
                            r"|\b(the|this|that)\s+(next|following)\s+(code\s+)?cells?\b", re.I)
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5}
BY_ORDINAL = re.compile(r"\bthe\s+(first|second|third|fourth|fifth)\s+(code\s+)?cell\b", re.I)
# Commands whose argument prints upright, and command names, removed before looking for
# letters that would print as an italic word.
UPRIGHT = re.compile(r"\\(mathrm|text|textrm|operatorname|mathsf|mathtt)\s*\{[^{}]*\}|\\[A-Za-z]+")


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(build_pdf.NOTEBOOK, as_version=4)


def _hidden(cell):
    return HIDDEN_TAG in cell.get("metadata", {}).get("tags", [])


def _hidden_cell_references(nb):
    """``(cell index, phrase)`` for each phrase of a printed markdown cell that points at a
    cell tagged remove-cell, which the PDF does not print.

    A heuristic: "hidden cell" always counts; "the cell above" / "the previous cell" mean the
    nearest code cell before, "the cell below" / "the next cell" the nearest after; "the first
    (second, ...) cell" the n-th code cell after the text or the n-th of the notebook. An
    indefinite "a cell below" names no cell and is not counted.
    """
    code = [index for index, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown" or _hidden(cell):
            continue
        before = [nb.cells[i] for i in code if i < index]
        after = [nb.cells[i] for i in code if i > index]
        found += [(index, match.group()) for match in NAMED_HIDDEN.finditer(cell.source)]
        found += [(index, match.group()) for match in POINTS_BACK.finditer(cell.source)
                  if before and _hidden(before[-1])]
        found += [(index, match.group()) for match in POINTS_FORWARD.finditer(cell.source)
                  if after and _hidden(after[0])]
        for match in BY_ORDINAL.finditer(cell.source):
            n = ORDINALS[match.group(1).lower()]
            meant = [cells[n - 1] for cells in (after, [nb.cells[i] for i in code]) if len(cells) >= n]
            if any(_hidden(meant_cell) for meant_cell in meant):
                found.append((index, match.group()))
    return found


def _math(markdown):
    """The math of a markdown text ($...$ and $$...$$), code spans and blocks left out."""
    prose = re.sub(r"```.*?```|`[^`]*`", "", markdown, flags=re.S)
    return [match.group(1) or match.group(2)
            for match in re.finditer(r"(?<!\\)\$\$(.+?)\$\$|(?<!\\)\$(.+?)(?<!\\)\$", prose, re.S)]


def _subscripts(math):
    """Every subscript of a TeX formula: the braced group after ``_``, or the word after it."""
    subscripts, position = [], 0
    while (position := math.find("_", position) + 1) > 0:
        rest = math[position:].lstrip()
        if rest.startswith("{"):
            depth = 0
            for end, char in enumerate(rest):
                depth += {"{": 1, "}": -1}.get(char, 0)
                if depth == 0:
                    break
            subscripts.append(rest[1:end])
        elif match := re.match(r"\\[A-Za-z]+|[A-Za-z]+|.", rest):
            subscripts.append(match.group())
    return subscripts


def _italic_words(nb):
    """``(cell index, subscript)`` of each subscript that prints two or more letters in italic
    side by side (``W_{rec}``, ``\\sigma_max``): LaTeX sets them as a product of variables.
    A pair of indices counts too: write it ``W_{i j}`` or ``W_{i,j}``."""
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and not _hidden(cell):
            for math in _math(cell.source):
                found += [(index, subscript) for subscript in _subscripts(math)
                          if re.search(r"[A-Za-z]{2,}", UPRIGHT.sub(" ", subscript))]
    return found


def _tiny(cells):
    nb = nbformat.v4.new_notebook()
    for kind, source, tags in cells:
        new = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(new(source, metadata={"tags": tags} if tags else {}))
    return nb


# The committed notebook.

def test_notebook_carries_no_execution_metadata(notebook):
    timed = [index for index, cell in enumerate(notebook.cells)
             if execute_notebook.TIMING_KEY in cell.get("metadata", {})]
    assert not timed, (f"cells {timed} carry execution timestamps: execute with `make notebook` "
                       f"(tutorial/execute_notebook.py), not nbconvert --execute")


def test_no_visible_code_line_is_too_long_to_print(notebook):
    limit = build_pdf.CODE_COLUMNS
    long_lines = [(index, len(line), line[:50]) for index, cell in enumerate(notebook.cells)
                  if cell.cell_type == "code" and not _hidden(cell)
                  for line in cell.source.splitlines() if len(line) > limit]
    assert not long_lines, (f"{len(long_lines)} code lines longer than {limit} characters "
                            f"(cell, length, start): {long_lines[:12]}")


def test_text_never_refers_to_a_hidden_cell(notebook):
    references = _hidden_cell_references(notebook)
    assert not references, f"printed text points at cells the PDF hides (cell, phrase): {references}"


def test_multi_letter_subscripts_are_upright(notebook):
    italic = _italic_words(notebook)
    assert not italic, f"write \\mathrm{{...}} for these subscripts (cell, subscript): {italic}"


def test_exercises_are_a_section(notebook):
    kept = build_pdf.kept_cells(notebook)
    headings = [line for cell in kept.cells if cell.cell_type == "markdown"
                for line in cell.source.splitlines() if re.match(r"##\s+Exercises\s*$", line)]
    assert headings, "no '## Exercises' heading: the exercises need a section of their own"


# The checks themselves, on small notebooks that have what they look for.

def test_a_reference_to_a_hidden_cell_is_found():
    text = ("The first cell makes vgrad importable; the cell above installs it. "
            "Every number is computed by a cell below.")
    hidden_first = _tiny([("markdown", "## Setup", []), ("code", "install()", [HIDDEN_TAG]),
                          ("markdown", text, []), ("code", "seed()", [])])
    assert [phrase for _, phrase in _hidden_cell_references(hidden_first)] == ["the cell above",
                                                                                "The first cell"]
    shown = _tiny([("markdown", "## Setup", []), ("code", "install()", []),
                   ("markdown", text, []), ("code", "seed()", [])])
    assert _hidden_cell_references(shown) == []
    named = _tiny([("markdown", "A hidden cell sets the seeds.", [])])
    assert _hidden_cell_references(named) == [(0, "hidden cell")]


def test_an_italic_multi_letter_subscript_is_found():
    nb = _tiny([("markdown", r"Here $\sigma_{max} \le W_{rec}$ and $h_{l-1}$, $x_{\max}$,", []),
                ("markdown", r"$$\chi = n_\mathrm{in} + n_{\mathrm{out}} + \sigma_max$$ `a_bc`", []),
                ("markdown", r"$W_{hidden}$", [HIDDEN_TAG])])
    assert _italic_words(nb) == [(0, "max"), (0, "rec"), (1, "max")]


def test_execution_metadata_is_stripped():
    nb = _tiny([("code", "1 + 1", []), ("markdown", "text", [])])
    nb.cells[0].metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    assert execute_notebook.strip_execution_metadata(nb) == 1
    assert "execution" not in nb.cells[0].metadata


@pytest.mark.slow
def test_execute_in_place_records_no_timing(tmp_path):
    """A real kernel run: outputs written, old timestamps gone, none added, tags kept."""
    nb = _tiny([("code", "print(6 * 7)", ["keep-me"])])
    nb.cells[0].metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    execute_notebook.execute_in_place(path, timeout=60)
    cell = nbformat.read(path, as_version=4).cells[0]
    assert cell.outputs[0].text == "42\n"
    assert cell.metadata == {"tags": ["keep-me"]}

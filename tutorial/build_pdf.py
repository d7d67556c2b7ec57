"""Render the executed tutorial notebook to a PDF with nbconvert's LaTeX route (XeLaTeX).

The notebook stays the single source: cells tagged ``remove-cell``, ``remove-input`` or
``remove-output`` are hidden by nbconvert's TagRemovePreprocessor, ``pdf_template.tex.j2``
turns nbconvert's LaTeX article into a document (title page with subtitle, version and date,
table of contents, figures floated with their captions), and the PDF's Keywords record the
SHA-256 of the notebook file it came from (``pdfinfo`` shows them).

Print conventions the notebook follows (tests/test_pdf.py and tests/test_notebook_file.py
check them): the first markdown cell is the H1 title, optionally followed by a subtitle, which
the title page prints; a figure's caption is the first paragraph of the markdown cell right
after the code cell that draws it, starting ``*Figure N.``; code lines are at most
CODE_COLUMNS characters, so nothing wraps.

Usage::

    python tutorial/build_pdf.py [NOTEBOOK] [PDF] [--latex DIR]
"""

from __future__ import annotations

import argparse
import copy
import datetime
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbconvert.exporters import LatexExporter, PDFExporter
from nbconvert.exporters.pdf import LatexFailed
from nbconvert.preprocessors import TagRemovePreprocessor
from nbconvert.writers import FilesWriter

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NOTEBOOK = ROOT / "notebooks" / "vanishing_gradients_tutorial.ipynb"
PDF = HERE / "Vanishing_gradients.pdf"
TEMPLATE = HERE / "pdf_template.tex.j2"
LUA_FILTER = HERE / "markdown_filter.lua"

# Every program the build and its tests run, and the Debian package that provides it.
TOOLS = {
    "xelatex": "texlive-xetex",
    "pandoc": "pandoc",
    "pdftotext": "poppler-utils",
    "pdfinfo": "poppler-utils",
    "pdfimages": "poppler-utils",
    "pdftoppm": "poppler-utils",  # the tests measure how full each page is
}
APT_PACKAGES = ("texlive-xetex texlive-fonts-recommended texlive-plain-generic fonts-dejavu-core "
                "pandoc poppler-utils")
INSTALL_HINT = f"On Debian or Ubuntu: sudo apt-get install {APT_PACKAGES} (or `make pdf-tools`)."

# Cell tags, as in the notebook: the same three names Jupyter Book uses.
REMOVE_TAGS = {
    "remove_cell_tags": ("remove-cell",),
    "remove_input_tags": ("remove-input",),
    "remove_all_outputs_tags": ("remove-output",),
}
MARGIN_CM = 2.2  # page margins; tests check that no text runs into them
# The longest code line the notebook may have. At the template's code size (\small DejaVu Sans
# Mono) 103 characters fit in a code cell's box and 107 in printed output, so 88 never wrap.
CODE_COLUMNS = 88
# A caption: a markdown cell that starts with "Figure N." (emphasised or not).
CAPTION = re.compile(r"^\s*[*_]{0,2}Figure\s+\d+\.")
# Continuation marks: nbconvert's Verbatim wrapping prints a hook (↪) at the start of a wrapped
# line and a visible space (␣) where a code line broke at a space. The tests count them.
CONTINUATION_MARKS = ("\N{RIGHTWARDS ARROW WITH HOOK}", "\N{OPEN BOX}")
KEYWORD = re.compile(r"notebook-sha256=([0-9a-f]{64})")
UTC = datetime.timezone.utc


class BuildError(RuntimeError):
    """The PDF cannot be built; the message says why and what to do."""


def require_tools() -> None:
    """Raise BuildError naming every missing program and the packages to install."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        named = ", ".join(f"{tool} ({TOOLS[tool]})" for tool in missing)
        raise BuildError(f"The PDF needs programs not found on PATH: {named}. {INSTALL_HINT}")


def notebook_sha256(path: Path) -> str:
    """SHA-256 of the notebook file's bytes: ``sha256sum`` prints the same."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def recorded_sha256(pdf: Path) -> str | None:
    """The notebook hash recorded in the PDF's Keywords, or None if there is none."""
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    match = KEYWORD.search(info)
    return match.group(1) if match else None


def source_date(path: Path) -> datetime.datetime:
    """The date printed on the title page, reproducible for a committed notebook.

    SOURCE_DATE_EPOCH if set; else the date of the notebook's last commit, when the
    file is unchanged since; else now (the notebook is newer than any commit).
    """
    if "SOURCE_DATE_EPOCH" in os.environ:
        return datetime.datetime.fromtimestamp(int(os.environ["SOURCE_DATE_EPOCH"]), UTC)
    path = Path(path).resolve()
    git = ["git", "-C", str(path.parent)]
    try:
        changed = subprocess.run([*git, "status", "--porcelain", "--", path.name],
                                 capture_output=True, text=True, check=True).stdout.strip()
        committed = subprocess.run([*git, "log", "-1", "--format=%ct", "--", path.name],
                                   capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):  # no git, or not a checkout
        changed, committed = "", ""
    if committed and not changed:
        return datetime.datetime.fromtimestamp(int(committed), UTC)
    return datetime.datetime.now(UTC)


def title_date(when: datetime.datetime) -> str:
    """The date as the title page prints it: ``3 March 2026``."""
    return f"{when.day} {when:%B %Y}"


def kept_cells(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of the notebook as the PDF shows it: tagged cells, inputs and outputs removed."""
    preprocessor = TagRemovePreprocessor(enabled=True, **REMOVE_TAGS)
    kept, _ = preprocessor.preprocess(nbformat.from_dict(nb), {})
    # TagRemovePreprocessor only marks removed inputs; drop them here as the template does.
    for cell in kept.cells:
        if cell.get("metadata", {}).get("transient", {}).get("remove_source"):
            cell.source = ""
    return kept


def _has_image(cell: nbformat.NotebookNode) -> bool:
    return any("image/png" in output.get("data", {}) or "image/jpeg" in output.get("data", {})
               for output in cell.get("outputs", []))


def figure_captions(nb: nbformat.NotebookNode) -> list[tuple[int, int]]:
    """``(code cell index, caption cell index)`` of every figure followed by its caption."""
    return [(index, index + 1) for index, cell in enumerate(nb.cells[:-1])
            if cell.cell_type == "code" and _has_image(cell)
            and nb.cells[index + 1].cell_type == "markdown"
            and CAPTION.match(nb.cells[index + 1].source)]


def for_print(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, str]:
    """The kept cells laid out for print, and the subtitle (markdown) for the title page.

    Each caption (the first paragraph of the markdown cell after a figure) moves into the
    metadata of the figure it follows (its last image output, ``vgrad_caption``), so the
    template floats figure and caption together; the subtitle,
    what the first markdown cell says between its H1 title and the next heading, moves to
    the title page.
    """
    nb = kept_cells(nb)
    for figure, caption in reversed(figure_captions(nb)):
        images = [output for output in nb.cells[figure].outputs
                  if "image/png" in output.get("data", {}) or "image/jpeg" in output.get("data", {})]
        # The caption is the cell's first paragraph; the text after it stays where it is.
        first, _, rest = nb.cells[caption].source.strip().partition("\n\n")
        images[-1].setdefault("metadata", {})["vgrad_caption"] = first
        if rest.strip():
            nb.cells[caption].source = rest
        else:
            del nb.cells[caption]
    subtitle = ""
    first = next((cell for cell in nb.cells if cell.cell_type == "markdown"), None)
    if first is not None and first.source.startswith("# "):
        title, _, rest = first.source.partition("\n")
        heading = re.search(r"^#", rest, re.M)  # the body starts at the next heading
        subtitle, body = (rest[:heading.start()], rest[heading.start():]) if heading else (rest, "")
        first.source = f"{title}\n\n{body}" if body else title
    return nb, subtitle.strip()


def _check_executed(nb: nbformat.NotebookNode, path: Path) -> None:
    unexecuted = [index for index, cell in enumerate(nb.cells)
                  if cell.cell_type == "code" and cell.source.strip()
                  and cell.execution_count is None]
    if unexecuted:
        raise BuildError(f"{path} has {len(unexecuted)} code cells that never ran (first: cell "
                         f"{unexecuted[0]}). Execute it first: `make notebook`.")


def _explain(failure: LatexFailed) -> str:
    """The lines of XeLaTeX's output a reader needs, with what to do about them."""
    output = str(failure.output)
    missing = sorted(set(re.findall(r"Missing character: There is no .*", output)))
    if missing:
        return ("These characters have no glyph in the PDF's fonts and would be lost:\n  "
                + "\n  ".join(missing)
                + "\nIn markdown write math as LaTeX ($\\sigma$); in printed output use "
                  "characters DejaVu Sans Mono has.")
    fonts = sorted(set(re.findall(r'The font "[^"]+" cannot be found', output)))
    if fonts:
        return ("; ".join(fonts) + ". The PDF uses Latin Modern (texlive-fonts-recommended) and "
                "DejaVu (fonts-dejavu-core). " + INSTALL_HINT)
    errors = [line for line in output.splitlines()
              if line.startswith("!") or re.match(r"\S+\.tex:\d+: ", line)]
    return "XeLaTeX failed:\n" + "\n".join(errors or output.splitlines()[-40:])


def _resources(notebook: Path, subtitle: str = "") -> dict:
    when = source_date(notebook)
    try:
        shown = notebook.resolve().relative_to(ROOT)
    except ValueError:
        shown = Path(notebook.name)
    return {
        "metadata": {"name": notebook.stem, "path": str(notebook.parent)},
        "vgrad": {
            "version": importlib.metadata.version("vgrad"),
            "date": title_date(when),
            "epoch": int(when.timestamp()),
            "margin_cm": MARGIN_CM,
            "notebook": shown.as_posix(),
            "sha256": notebook_sha256(notebook),
            "lua_filter": LUA_FILTER.as_posix(),
            "subtitle": subtitle,
        },
    }


def _exporter(kind: type[LatexExporter]) -> LatexExporter:
    exporter = kind(template_file=str(TEMPLATE), exclude_input_prompt=True,
                    exclude_output_prompt=True)
    exporter.register_preprocessor(TagRemovePreprocessor(enabled=True, **REMOVE_TAGS), enabled=True)
    return exporter


def render_pdf(notebook: Path = NOTEBOOK, pdf: Path = PDF, latex_dir: Path | None = None) -> Path:
    """Render ``notebook`` as it is to ``pdf``; raise BuildError with the reason on failure.

    With ``latex_dir``, also write the LaTeX source and figures there, to debug the template.
    """
    require_tools()
    notebook, pdf = Path(notebook), Path(pdf)
    if not notebook.is_file():
        raise BuildError(f"{notebook} not found.")
    nb = nbformat.read(notebook, as_version=4)
    _check_executed(nb, notebook)
    nb, subtitle = for_print(nb)
    resources = _resources(notebook, subtitle)

    if latex_dir is not None:
        latex, extra = _exporter(LatexExporter).from_notebook_node(
            nb, resources=copy.deepcopy(resources))
        FilesWriter(build_directory=str(latex_dir)).write(latex, extra, notebook_name="notebook")
    exporter = _exporter(PDFExporter)
    # nonstopmode: report every error (all missing characters) of a run at once.
    exporter.latex_command = ["xelatex", "-interaction=nonstopmode", "-file-line-error",
                              "{filename}"]
    # xdvipdfmx stamps CreationDate and the file ID from SOURCE_DATE_EPOCH: same notebook,
    # same bytes. XeLaTeX reads it from the environment, so set it for this render only.
    saved = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(resources["vgrad"]["epoch"])
    try:
        body, _ = exporter.from_notebook_node(nb, resources=resources)
    except LatexFailed as failure:
        raise BuildError(f"Rendering {notebook} failed. {_explain(failure)}\nTo see the LaTeX: "
                         f"python tutorial/build_pdf.py --latex tutorial/_build") from None
    finally:
        if saved is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = saved
    pdf.parent.mkdir(parents=True, exist_ok=True)
    pdf.write_bytes(body)
    return pdf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", nargs="?", type=Path, default=NOTEBOOK)
    parser.add_argument("pdf", nargs="?", type=Path, default=PDF)
    parser.add_argument("--latex", type=Path, metavar="DIR",
                        help="also write the LaTeX source and figures to DIR")
    args = parser.parse_args(argv)
    try:
        render_pdf(args.notebook, args.pdf, args.latex)
    except BuildError as error:
        print(f"build_pdf: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {args.pdf}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The tutorial PDF: rendered from the committed notebook, then read back with poppler.

The session fixture renders ``notebooks/vanishing_gradients_tutorial.ipynb`` into a temporary
directory with ``tutorial/build_pdf.py``, exactly as ``make pdf`` does. Without XeLaTeX, pandoc
or poppler-utils these tests fail (never skip), with a message naming the packages to install.
"""

import html
import importlib.util
import re
import subprocess
import unicodedata
from pathlib import Path

import mistune
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("build_pdf", ROOT / "tutorial" / "build_pdf.py")
build_pdf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_pdf)

# Pages the rendered tutorial may have (20 when this was set, with ten figures): fewer means
# lost outputs or figures, more means an output or a figure ran away.
PAGE_RANGE = (15, 40)
POINTS_PER_CM = 72 / 2.54
# A 100-dpi figure shown at up to 150 pixels per inch keeps at least 2/3 of its size,
# so its 10-point labels print at 6.7 points or more.
MAX_FIGURE_PPI = 150
# Above text/plain in nbconvert's LaTeX display priority: an output with one of these
# prints that instead of its text.
RICHER_THAN_TEXT = ("text/latex", "application/pdf", "image/png", "image/jpeg", "image/svg+xml",
                    "text/markdown")

slow = pytest.mark.slow


def _poppler(*command):
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def _normalize(text):
    """Compare text as printed: compatibility forms folded (math italic 𝜎 is σ, ﬁ is fi),
    typographic quotes made straight, whitespace dropped (lines wrap anywhere)."""
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(str.maketrans("‘’“”", "''\"\""))
    return re.sub(r"\s+", "", text)


def _text_of(tokens):
    """Plain text of mistune inline tokens; math becomes None (printed differently)."""
    parts = []
    for token in tokens:
        if token["type"] == "inline_math":
            parts.append(None)
        elif "children" in token:
            parts.extend(_text_of(token["children"]))
        else:
            parts.append(token.get("raw", ""))
    return parts


def _headings(nb):
    """``(level, parts)`` of every markdown heading, in order, from the cells the PDF keeps."""
    parse = mistune.create_markdown(renderer=None, plugins=["math"])
    headings = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for token in parse(cell.source):
                if token["type"] == "heading":
                    headings.append((token["attrs"]["level"], _text_of(token["children"])))
    return headings


def _numbered_headings(nb):
    """``(number, parts)`` of each H2 and H3 as the PDF numbers them: ``"2"``, ``"2.1"``;
    ``""`` for References, which is unnumbered."""
    section = subsection = 0
    for level, parts in _headings(nb):
        if level == 2 and "".join(part or "" for part in parts).strip() == "References":
            yield "", parts
        elif level == 2:
            section, subsection = section + 1, 0
            yield str(section), parts
        elif level == 3:
            subsection += 1
            yield f"{section}.{subsection}", parts


def _printed_outputs(nb):
    """The text of every output the PDF prints as text."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                yield output.text
            elif "data" in output and not any(kind in output.data for kind in RICHER_THAN_TEXT):
                yield output.data.get("text/plain", "")


def _figures(nb):
    return sum(1 for cell in nb.cells for output in cell.get("outputs", [])
               if "image/png" in output.get("data", {}) or "image/jpeg" in output.get("data", {}))


@pytest.fixture(scope="session")
def notebook():
    """The committed notebook as the PDF shows it (tagged cells removed)."""
    return build_pdf.kept_cells(nbformat.read(build_pdf.NOTEBOOK, as_version=4))


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    """A fresh PDF of the committed notebook."""
    return build_pdf.render_pdf(build_pdf.NOTEBOOK, tmp_path_factory.mktemp("pdf") / "tutorial.pdf")


@pytest.fixture(scope="session")
def text(rendered):
    """The PDF's text, line by line as printed (-layout keeps a heading's number with it)."""
    return _poppler("pdftotext", "-layout", "-enc", "UTF-8", str(rendered), "-")


def test_committed_pdf_records_the_committed_notebook():
    assert build_pdf.PDF.is_file(), f"{build_pdf.PDF} is missing: run `make pdf` and commit it."
    build_pdf.require_tools()
    recorded = build_pdf.recorded_sha256(build_pdf.PDF)
    actual = build_pdf.notebook_sha256(build_pdf.NOTEBOOK)
    assert recorded == actual, (
        f"{build_pdf.PDF.name} was rendered from notebook {recorded}, but the notebook is now "
        f"{actual}: run `make pdf` and commit the PDF with the notebook.")


def test_headings_follow_the_convention(notebook):
    """The first markdown cell opens with the only H1, the title (the PDF drops it and prints
    the metadata title); ``##`` and ``###`` headings type no numbers: LaTeX adds them."""
    first = next(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    levels = [level for level, _ in _headings(notebook)]
    assert first.startswith("# ") and levels.count(1) == 1, "one H1, the title, opens the notebook"
    titles = ["".join(part or "$" for part in parts) for _, parts in _numbered_headings(notebook)]
    typed = [title for title in titles if re.match(r"\d+(\.\d+)*\.?\s", title)]
    assert not typed, f"LaTeX numbers the sections; drop the typed numbers from {typed}"


@slow
def test_title_page_has_title_version_date_and_contents(notebook, rendered):
    first_page = _normalize(_poppler("pdftotext", "-f", "1", "-l", "1", str(rendered), "-"))
    date = build_pdf.title_date(build_pdf.source_date(build_pdf.NOTEBOOK))
    version = build_pdf.importlib.metadata.version("vgrad")
    for expected in (notebook.metadata["title"], f"vgrad {version}", date, "Contents"):
        assert _normalize(expected) in first_page, f"{expected!r} missing from page 1"


@slow
def test_every_heading_is_numbered_in_the_contents_and_the_text(notebook, text):
    printed = _normalize(text)
    dehyphenated = _normalize(re.sub(r"-\n", "", text))
    missing = []
    for number, parts in _numbered_headings(notebook):
        # Math prints as math: match the text around it, with a short gap for the math.
        pattern, gap = re.escape(number), ""
        for part in parts:
            if part is None:
                gap = ".{1,60}?"
            elif _normalize(part):
                as_printed = part.replace("---", "—").replace("--", "–")  # as pandoc prints
                pattern += gap + re.escape(_normalize(as_printed))
                gap = ""
        found = max(len(re.findall(pattern, printed)), len(re.findall(pattern, dehyphenated)))
        if found < 2:
            missing.append(f"{number} {''.join(part or '$…$' for part in parts)} ({found}×)")
    assert not missing, f"headings not printed in both the contents and the text: {missing}"


@slow
def test_no_character_is_lost(notebook, text):
    """Every non-ASCII character of the kept markdown and printed output is in the PDF's text.
    (The XeLaTeX log check is in the build: \\tracinglostchars=3 makes a missing glyph an error.)"""
    assert "\N{REPLACEMENT CHARACTER}" not in text
    sources = [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]
    sources += _printed_outputs(notebook)
    wanted = {char for char in unicodedata.normalize("NFKC", "".join(sources))
              if ord(char) > 127 and not char.isspace() and unicodedata.category(char)[0] != "C"}
    lost = wanted - set(unicodedata.normalize("NFKC", text))
    assert not lost, "lost: " + ", ".join(f"{char} (U+{ord(char):04X})" for char in sorted(lost))


@slow
def test_every_figure_is_embedded_legibly(notebook, rendered):
    rows = [line.split() for line in _poppler("pdfimages", "-list", str(rendered)).splitlines()[2:]]
    images = [row for row in rows if row[2] == "image"]  # an "smask" row is an image's alpha
    assert len(images) == _figures(notebook), "embedded images differ from the notebook's figures"
    too_small = [row[0] for row in images if float(row[12]) > MAX_FIGURE_PPI]
    assert not too_small, f"figures shrunk beyond legibility on pages {too_small}"


@slow
def test_page_count_is_in_range(rendered):
    pages = int(re.search(r"^Pages:\s+(\d+)", _poppler("pdfinfo", str(rendered)), re.M).group(1))
    assert PAGE_RANGE[0] <= pages <= PAGE_RANGE[1], f"{pages} pages, expected {PAGE_RANGE}"


@slow
def test_no_text_runs_into_the_margins(rendered):
    """Long code and output lines wrap: every word ends inside the text block."""
    layout = _poppler("pdftotext", "-bbox", str(rendered), "-")
    margin = build_pdf.MARGIN_CM * POINTS_PER_CM
    overflowing = []
    for number, page in enumerate(layout.split("<page ")[1:], start=1):
        right_edge = float(re.search(r'width="([\d.]+)"', page).group(1)) - margin + 1
        overflowing += [(number, html.unescape(word)) for x_max, word
                        in re.findall(r'xMax="([\d.]+)"[^>]*>([^<]*)</word>', page)
                        if float(x_max) > right_edge]
    assert not overflowing, f"text past the right margin (page, word): {overflowing[:10]}"


def _tiny_notebook(markdown, printed):
    """An executed notebook of one markdown cell and tagged code cells, without a kernel."""
    nb = nbformat.v4.new_notebook(metadata={"title": "Tiny", "authors": [{"name": "Test"}]})
    nb.cells.append(nbformat.v4.new_markdown_cell(markdown))
    for tag, source, output in (("remove-cell", "hidden_cell()", "HIDDEN-CELL-OUTPUT"),
                                ("remove-input", "hidden_input()", printed),
                                ("remove-output", "shown_input()", "HIDDEN-OUTPUT")):
        cell = nbformat.v4.new_code_cell(source, execution_count=1, metadata={"tags": [tag]})
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
        nb.cells.append(cell)
    return nb


@slow
def test_tags_badge_and_fallback_font(tmp_path):
    """Tagged cells hidden as tagged, the H1 replaced by the title, the Colab badge a link,
    Greek in prose printed (in DejaVu Serif)."""
    badge = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
             "(https://colab.research.google.com/)")
    markdown = f"# Tiny title\n\n{badge}\n\n## Greek σ ∂ → in prose\n"
    path = tmp_path / "tiny.ipynb"
    nbformat.write(_tiny_notebook(markdown, "SHOWN-OUTPUT σ ≤ ×"), path)
    pdf = build_pdf.render_pdf(path, tmp_path / "tiny.pdf")
    printed = _normalize(_poppler("pdftotext", str(pdf), "-"))
    shown = ("Open In Colab", "1 Greek σ ∂ → in prose", "SHOWN-OUTPUT σ ≤ ×", "shown_in")
    hidden = ("Tiny title", "hidden_cell", "HIDDEN-CELL-OUTPUT", "hidden_input", "HIDDEN-OUTPUT")
    assert [text for text in shown if _normalize(text) not in printed] == []
    assert [text for text in hidden if _normalize(text) in printed] == []


@slow
def test_a_character_no_font_has_stops_the_build(tmp_path):
    path = tmp_path / "tiny.ipynb"
    nbformat.write(_tiny_notebook("## Kanji 漢 in prose\n", "and 字 in output"), path)
    with pytest.raises(build_pdf.BuildError, match="Missing character") as error:
        build_pdf.render_pdf(path, tmp_path / "tiny.pdf")
    assert "漢" in str(error.value) and "字" in str(error.value)

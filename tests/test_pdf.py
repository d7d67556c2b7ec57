"""The tutorial PDF: rendered from the committed notebook, then read back with poppler.

The session fixture renders ``notebooks/vanishing_gradients_tutorial.ipynb`` into a temporary
directory with ``tutorial/build_pdf.py``, exactly as ``make pdf`` does. Without XeLaTeX, pandoc
or poppler-utils these tests fail (never skip), with a message naming the packages to install.
"""

import html
import importlib.util
import re
import subprocess
import tempfile
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
# At most this share of a page's text block may stay blank (below its last line or figure),
# except on the last page and on a page followed by a new section.
MAX_BLANK = 0.40
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
    _, subtitle = build_pdf.for_print(notebook)
    subtitle = re.sub(r"[*_`]", "", subtitle)  # markdown emphasis and code marks
    for expected in (notebook.metadata["title"], subtitle, f"vgrad {version}", date, "Contents"):
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


def _pages(pdf):
    """The text of each page, as printed (-layout)."""
    return _poppler("pdftotext", "-layout", "-enc", "UTF-8", str(pdf), "-").split("\f")[:-1]


def _page_fill(pdf, dots_per_inch=30, ink=235):
    """Share of each page's text block (inside the margins) between its first and its last
    printed row: 1.0 for a full page. Measured on the rendered page, figures included."""
    margin = round(build_pdf.MARGIN_CM / 2.54 * dots_per_inch)
    fills = []
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["pdftoppm", "-r", str(dots_per_inch), "-gray", str(pdf), f"{folder}/page"],
                       check=True)
        for path in sorted(Path(folder).glob("page-*.pgm"), key=lambda p: int(p.stem.split("-")[1])):
            data = path.read_bytes()
            header = re.match(rb"P5\s+(\d+)\s+(\d+)\s+\d+\s", data)
            width, height, pixels = int(header[1]), int(header[2]), data[header.end():]
            inked = [row for row in range(margin, height - margin)
                     if min(pixels[row * width + margin:(row + 1) * width - margin]) < ink]
            fills.append((inked[-1] - inked[0] + 1) / (height - 2 * margin) if inked else 0.0)
    return fills


def _section_titles(nb):
    """Each section heading (H2) as it starts a printed line: number and text up to any math."""
    titles = []
    for number, parts in _numbered_headings(nb):
        if "." not in number:
            leading = []
            for part in parts:
                if part is None:
                    break
                leading.append(part)
            titles.append(_normalize(number + "".join(leading)))
    return titles


@slow
def test_no_code_or_output_line_is_wrapped(notebook, text):
    """Code lines at most CODE_COLUMNS characters and short printed output fit the page:
    nbconvert's wrapping leaves no continuation mark (↪ or ␣) in the PDF."""
    sources = "".join(_printed_outputs(notebook)) + "".join(
        cell.source for cell in notebook.cells if cell.cell_type in ("markdown", "code"))
    hook, space = build_pdf.CONTINUATION_MARKS
    lines = text.splitlines()
    wrapped = [f"{lines[number - 1].strip()[-30:]} {line.strip()[:30]}"
               for number, line in enumerate(lines) if hook in line]
    marks = {mark: text.count(mark) - sources.count(mark) for mark in (hook, space)}
    assert marks == {hook: 0, space: 0}, (
        f"{marks[hook]} wrapped lines ({hook}), {marks[space]} of them broken at a space "
        f"({space}); the first, end of one line and start of the next: {wrapped[:10]}")


def _mostly_blank_pages(nb, pdf):
    """``(page, blank share)`` of each page more than MAX_BLANK blank that is not the last and
    is not followed by a page that starts with a section heading."""
    fills, pages = _page_fill(pdf), _pages(pdf)
    assert len(fills) == len(pages)
    sections = _section_titles(nb)

    def starts_a_section(page):
        first = next((line for line in page.splitlines() if line.strip()), "")
        return any(_normalize(first).startswith(title) for title in sections)

    return [(number, f"{1 - fill:.0%}") for number, fill in enumerate(fills, start=1)
            if fill < 1 - MAX_BLANK and number < len(pages) and not starts_a_section(pages[number])]


@slow
def test_no_page_is_mostly_blank(notebook, rendered):
    """A page is at least 1 - MAX_BLANK full, unless it is the last or a section starts the
    next page (a figure that does not fit floats on, so the text fills the page)."""
    blank = _mostly_blank_pages(notebook, rendered)
    assert not blank, f"pages more than {MAX_BLANK:.0%} blank, not before a new section: {blank}"


@slow
def test_a_mostly_blank_page_is_found(tmp_path):
    """A forced page break after one line leaves page 2 blank: found. Page 3 ends as blank
    but a section starts page 4, and page 4 is the last: both allowed."""
    markdown = ("# Tiny\n\n## One\n\nA single line.\n\n\\newpage\n\nAnother line.\n\n"
                "\\newpage\n\n## Two\n\nThe end.\n")
    path = tmp_path / "tiny.ipynb"
    nbformat.write(_tiny_notebook(markdown, "printed"), path)
    pdf = build_pdf.render_pdf(path, tmp_path / "tiny.pdf")
    blank = _mostly_blank_pages(build_pdf.kept_cells(nbformat.read(path, as_version=4)), pdf)
    assert [page for page, _ in blank] == [2]


@slow
def test_captions_stay_with_their_figures(notebook, rendered):
    """Each figure and the caption cell after it ("Figure N. ...") print on the same page."""
    kept, _ = build_pdf.for_print(notebook)
    images = []  # the caption number of each embedded image, in order; None if uncaptioned
    for cell in kept.cells:
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}) or "image/jpeg" in output.get("data", {}):
                caption = build_pdf.CAPTION.match(output.get("metadata", {}).get("vgrad_caption", ""))
                images.append(re.search(r"\d+", caption.group()).group() if caption else None)
    assert any(images), "no figure has a caption cell after it"
    rows = [line.split() for line in _poppler("pdfimages", "-list", str(rendered)).splitlines()[2:]]
    image_pages = [int(row[0]) for row in rows if row[2] == "image"]
    assert len(image_pages) == len(images)
    caption_pages = {}
    for number, page in enumerate(_pages(rendered), start=1):
        for figure in re.findall(r"^\s*Figure (\d+)\.", page, re.M):
            caption_pages.setdefault(figure, number)
    apart = [(f"Figure {figure}", image_page, caption_pages.get(figure))
             for figure, image_page in zip(images, image_pages)
             if figure is not None and caption_pages.get(figure) != image_page]
    assert not apart, f"figure and caption on different pages (figure, image page, caption page): {apart}"


@slow
def test_web_addresses_are_printed(notebook, text):
    """A link whose text is not its address prints the address (markdown_filter.lua: footnote)."""
    printed = _normalize(text)
    links = [(label, target) for cell in notebook.cells if cell.cell_type == "markdown"
             for label, target in re.findall(r"\[([^\]]*)\]\((\w[\w+.-]*://[^)\s]+)\)", cell.source)]
    lost = [target for label, target in links if _normalize(target) not in printed]
    assert not lost, f"link addresses not printed: {lost}"


@slow
def test_exercises_have_their_own_section_in_the_contents(text):
    entries = re.findall(r"^\s*(?:\d+\s+)?Exercises[\s.]*\d+\s*$", text, re.M)
    assert entries, "no 'Exercises' section in the table of contents"


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
    """Tagged cells hidden as tagged, the H1 replaced by the title and its subtitle on the
    title page, the Colab badge a link, a link's address printed, Greek in prose printed (in
    DejaVu Serif)."""
    badge = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
             "(https://colab.research.google.com/)")
    link = "[the repository](https://example.org/vgrad/tree)"
    markdown = (f"# Tiny title\n\n**Tiny subtitle**\n\n{badge}\n\n## Greek σ ∂ → in prose\n\n"
                f"See {link}.\n")
    path = tmp_path / "tiny.ipynb"
    nbformat.write(_tiny_notebook(markdown, "SHOWN-OUTPUT σ ≤ ×"), path)
    pdf = build_pdf.render_pdf(path, tmp_path / "tiny.pdf")
    printed = _normalize(_poppler("pdftotext", str(pdf), "-"))
    first_page = _normalize(_poppler("pdftotext", "-l", "1", str(pdf), "-"))
    assert _normalize("Tiny subtitle") in first_page
    shown = ("Open In Colab", "1 Greek σ ∂ → in prose", "SHOWN-OUTPUT σ ≤ ×", "shown_in",
             "the repository", "https://example.org/vgrad/tree", "https://colab.research.google.com/")
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

-- Pandoc filter applied to the notebook's markdown cells on their way to the PDF.

-- A remote image (the Colab badge) cannot be embedded in the PDF: print it as a link
-- with its alt text instead, so XeLaTeX never looks for a URL on disk.
function Image(image)
  if image.src:match("^%a[%w+.-]*://") then
    return pandoc.Link(image.caption, image.src)
  end
end

-- Latin Modern Roman covers Latin and this punctuation, but no Greek, arrows or math
-- symbols: those are set in DejaVu Serif (\fallback in pdf_template.tex.j2). A
-- character neither font has stops XeLaTeX (\tracinglostchars=3).
local latin_modern_punctuation = {}
for _, code in ipairs({0x2013, 0x2014, 0x2018, 0x2019, 0x201A, 0x201C, 0x201D, 0x201E,
                       0x2020, 0x2021, 0x2022, 0x2026, 0x2030, 0x2039, 0x203A, 0x2044,
                       0x20AC}) do
  latin_modern_punctuation[code] = true
end

local function in_latin_modern(code)
  return code < 0x370 or latin_modern_punctuation[code] == true
end

function Str(str)
  local pieces, run, run_is_fallback, any_fallback = {}, {}, false, false
  local function flush()
    if #run == 0 then return end
    local text = table.concat(run)
    if run_is_fallback then
      pieces[#pieces + 1] = pandoc.RawInline("latex", "\\fallback{" .. text .. "}")
    else
      pieces[#pieces + 1] = pandoc.Str(text)
    end
    run = {}
  end
  for _, code in utf8.codes(str.text) do
    local fallback = not in_latin_modern(code)
    if fallback ~= run_is_fallback then
      flush()
      run_is_fallback = fallback
    end
    any_fallback = any_fallback or fallback
    run[#run + 1] = utf8.char(code)
  end
  if not any_fallback then return nil end
  flush()
  return pieces
end

-- LaTeX numbers the sections; the references close the document unnumbered, as in a paper.
function Header(header)
  if pandoc.utils.stringify(header.content) == "References" then
    header.classes:insert("unnumbered")
    return header
  end
end

-- On paper a link's target is lost unless it is printed: a link to a web address whose text
-- is not that address gets the address in a footnote. Links inside the document (#anchor) and
-- relative paths are left alone.
function Link(link)
  local target = link.target
  if not target:match("^%a[%w+.-]*:") then return nil end
  local text = pandoc.utils.stringify(link.content)
  local bare = target:gsub("^mailto:", "")
  if text == target or text == bare then return nil end
  local address = pandoc.Link({pandoc.Str(bare)}, target)
  return {link, pandoc.Note({pandoc.Plain({address})})}
end

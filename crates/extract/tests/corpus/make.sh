#!/usr/bin/env bash
# Regenerates the real-file corpus from the sources in src/ with the real tools (Debian bookworm):
#   apt-get install -y libreoffice-writer libreoffice-calc libreoffice-impress pandoc ghostscript \
#     texlive-latex-base texlive-fonts-recommended qpdf
# The tests never run this: they read the committed output. Tools stamp dates (and LibreOffice
# random ids) into what they write, so the bytes change on every run while the text does not.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here"/src/* "$work"/
cd "$work"

lo() { # lo FILTER SOURCE: LibreOffice headless conversion, with a throwaway profile
    soffice -env:UserInstallation="file://$work/profile" --headless --convert-to "$1" "$2" --outdir "$work" >/dev/null 2>&1
}
lo docx report.fodt
lo odt report.fodt
lo rtf report.fodt
lo pdf report.fodt
lo 'doc:MS Word 97' report.fodt
lo xlsx workbook.fods
lo ods workbook.fods
lo 'xls:MS Excel 97' workbook.fods
lo pptx slides.fodp
lo odp slides.fodp
lo 'ppt:MS PowerPoint 97' slides.fodp

pandoc book.md -s -o book.epub
pandoc book.md -s -o book.html

pdflatex -interaction=batchmode form-inner.tex >/dev/null
pdflatex -interaction=batchmode form-xobject.tex >/dev/null
: >empty.map
latex -interaction=batchmode type3-tex.tex >/dev/null
dvips -q -u empty.map -D 300 type3-tex.dvi -o type3-tex.ps
ps2pdf type3-tex.ps type3-tex.pdf
ps2pdf type3.ps type3-ps.pdf

# Check that the PDFs contain what they are here for.
qpdf --qdf --object-streams=disable form-xobject.pdf - | grep -ac '/Subtype /Form' >/dev/null
for f in type3-tex.pdf type3-ps.pdf; do qpdf --qdf --object-streams=disable "$f" - | grep -ac '/Subtype /Type3' >/dev/null; done

for f in report.{docx,odt,rtf,pdf,doc} workbook.{xlsx,ods,xls} slides.{pptx,odp,ppt} book.{epub,html} \
    form-xobject.pdf type3-tex.pdf type3-ps.pdf; do
    cp "$f" "$here/$f"
done
ls -l "$here"

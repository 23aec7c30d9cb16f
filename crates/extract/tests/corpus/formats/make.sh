#!/usr/bin/env bash
# Remakes the format fixtures. Every file holds the sentence
# "The quartz lantern glows over the <fmt> marsh." (and most an address
# pii.<fmt>@example.com) so that tests can search for it.
#
# Needs (Debian 12): apt-get install -y pandoc zip libole-storage-lite-perl   (tar, gzip, perl: base system)
#        Python 3.11+ with: pip install icalendar vobject nbformat
#        (run with PYTHON=/path/to/venv/bin/python if they live in a venv)
#
# Made by pandoc 2.17 from notes.src.md, with @FMT@ replaced by the format word:
#   notes.rst       pandoc -s -f markdown -t rst        (title, author, section, list, link, math, footnote, code)
#   notes.adoc      pandoc -s -f markdown -t asciidoc   (same content)
#   notes.org       pandoc -s -f markdown -t org        (same content, #+title: / #+author:)
#   paper.tex       pandoc -s -f markdown -t latex      (\title, \author, \section, \(E = mc^2\), \footnote)
# Made by make_fixtures.py (${PYTHON:-python3}):
#   calendar.ics    icalendar: VCALENDAR with VTIMEZONE Europe/Paris, two VEVENTs
#                   (one with a folded DESCRIPTION, one all-day with \, and \; in SUMMARY) and a VTODO
#   contacts.vcf    vobject: two vCard 3.0 cards, one with a folded NOTE, one with a non-ASCII name
#   analysis.ipynb  nbformat: v4.5 notebook, markdown / code (stream) / code (text/plain + image/png) / raw cells
#   mailbox.mbox    Python's mailbox.mbox: three messages, one ">From " quoted line, one multipart with count.csv
# Made by make_msg.pl (perl, OLE::Storage_Lite 0.20 from libole-storage-lite-perl):
#   message.msg     Outlook message laid out per MS-OXMSG in an OLE compound file: UTF-16 string
#                   streams (subject, sender, To/Cc display, body, Message-ID), submit and delivery
#                   FILETIMEs in __properties_version1.0, an empty __nameid_version1.0, two
#                   recipients (To, Cc) and one attachment (tally.txt); no timestamps in the
#                   directory, so runs are byte-identical
# Made by zip 3.0 / GNU tar / gzip from members written below (fixed mtimes, TZ=UTC):
#   bundle.zip      zip -X: readme.txt, docs/notes.md, docs/data.csv, empty/, inner.zip (holding deep.txt)
#   bundle.tar      GNU tar, same members
#   bundle.tar.gz   GNU tar | gzip -n, same members
#   hostile/truncated.zip     first half of bundle.zip (head -c); the cut falls just after the
#                             stored inner.zip, so a reader that scans back for an end record
#                             finds inner.zip's and may list deep.txt instead of failing
#   hostile/truncated.tar.gz  first half of bundle.tar.gz (head -c)
#   hostile/truncated.msg     first half of message.msg (head -c): the header and the whole mini
#                             stream (every string) survive, but the cut falls in the directory,
#                             so most entries and the FAT at the end of the file are gone
#   hostile/truncated.ics     calendar.ics cut inside the first VEVENT (no END:VEVENT, no END:VCALENDAR)
#   hostile/broken.ipynb      valid JSON whose "cells" is a string (printf)
# Written by hand (not made here): drawing.svg, settings.yaml, settings.toml, settings.ini.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export TZ=UTC LC_ALL=C
umask 022

for fmt in rst:notes.rst asciidoc:notes.adoc org:notes.org latex:paper.tex; do
  word=${fmt%%:*} out=${fmt#*:}
  sed "s/@FMT@/$word/g" notes.src.md | pandoc -s -f markdown -t "$word" --wrap=preserve -o "$out"
done

"${PYTHON:-python3}" make_fixtures.py
perl make_msg.pl

here=$PWD
stamp='2024-01-01 00:00:00 UTC'
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# stage DIR WORD: the members of one archive, readme.txt naming WORD.
stage() {
  local dir=$1 word=$2
  mkdir -p "$dir/docs" "$dir/empty" "$dir/inner"
  printf 'The quartz lantern glows over the %s marsh.\n' "$word" >"$dir/readme.txt"
  printf '# Archive notes\n\nNested member text for the archive.\n' >"$dir/docs/notes.md"
  printf 'species,count\ngrey heron,2\nlittle egret,3\n' >"$dir/docs/data.csv"
  printf 'Deep member text.\n' >"$dir/inner/deep.txt"
  touch -d "$stamp" "$dir/inner/deep.txt"
  (cd "$dir/inner" && zip -X -q ../inner.zip deep.txt)
  rm -r "$dir/inner"
  find "$dir" -exec touch -d "$stamp" {} +
}

members=(docs/ docs/data.csv docs/notes.md empty/ inner.zip readme.txt)
tar_opts=(--format=gnu --sort=name --mtime="$stamp" --owner=0 --group=0 --numeric-owner)

stage "$work/zip" zip
rm -f bundle.zip
(cd "$work/zip" && zip -X -q "$here/bundle.zip" "${members[@]}")

stage "$work/tar" tar
tar "${tar_opts[@]}" -C "$work/tar" -cf bundle.tar docs empty inner.zip readme.txt

stage "$work/targz" targz
tar "${tar_opts[@]}" -C "$work/targz" -cf - docs empty inner.zip readme.txt | gzip -9 -n >bundle.tar.gz

mkdir -p hostile
half() { head -c $(( $(stat -c %s "$1") / 2 )) "$1"; }
half bundle.zip >hostile/truncated.zip
half bundle.tar.gz >hostile/truncated.tar.gz
half message.msg >hostile/truncated.msg
sed '/^LOCATION:/,$d' calendar.ics >hostile/truncated.ics
printf '{\n "cells": "not a list of cells",\n "metadata": {},\n "nbformat": 4,\n "nbformat_minor": 5\n}\n' >hostile/broken.ipynb

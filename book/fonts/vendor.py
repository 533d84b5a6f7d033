"""Vendor the book's web fonts into book/_static/fonts/ from the npm packages pinned here.

The chapters print Japanese, Arabic and Russian (the toy corpus's sentences). A reader whose system
lacks a font for them would see empty boxes, so the book serves its own: Noto Sans JP, Noto Sans
Arabic and Noto Sans (Cyrillic), from Fontsource (package.json, with package-lock.json's integrity
hashes), under the SIL Open Font License. Only what the book needs is copied: the unicode-range
slices of Noto Sans JP that hold the kana, the word 日本語 and every Japanese character of the
notebooks and book pages, the Arabic subset of Noto Sans Arabic and the Cyrillic subsets of Noto
Sans, regular weight (bold is synthesised). fonts.css declares them under their own names (XLT
Noto Sans JP, ...), never as local() fonts, so what a page shows comes from the book's files.

Usage (from the repository root; needs npm and the registry): python book/fonts/vendor.py
Run it again after a notebook gains Japanese characters: tests/test_book.py fails on a character
of the book that no vendored slice covers.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BOOK = HERE.parent
ROOT = BOOK.parent
OUT = BOOK / "_static" / "fonts"
PREFIX = "XLT "
#: Characters always covered besides those found in the book: the kana and 日本語.
ALWAYS = "".join(map(chr, range(0x3041, 0x3097))) + "".join(map(chr, range(0x30A1, 0x30FB))) + "日本語"
#: (package, family as the book names it, which @font-face blocks of its 400.css to take)
PACKAGES = (
    ("noto-sans-jp", "Noto Sans JP", "needed"),
    ("noto-sans-arabic", "Noto Sans Arabic", ("arabic",)),
    ("noto-sans", "Noto Sans", ("cyrillic", "cyrillic-ext")),
)
FACE = re.compile(r"/\* (?P<name>[^*]+?) \*/\s*@font-face\s*\{(?P<body>[^}]*)\}")


def parse_ranges(spec: str) -> list[tuple[int, int]]:
    """'U+3041-3096,U+30a0' -> [(0x3041, 0x3096), (0x30a0, 0x30a0)]."""
    out = []
    for part in spec.replace(" ", "").split(","):
        part = part.removeprefix("U+").removeprefix("u+")
        lo, _, hi = part.partition("-")
        if "?" in lo:  # U+4??: a wildcard range
            out.append((int(lo.replace("?", "0"), 16), int(lo.replace("?", "f"), 16)))
        else:
            out.append((int(lo, 16), int(hi or lo, 16)))
    return out


def faces(css: str) -> list[dict]:
    """The @font-face blocks of a Fontsource CSS file: name, woff2 file, unicode ranges."""
    found = []
    for m in FACE.finditer(css):
        body = m.group("body")
        woff2 = re.search(r"url\(\./files/([^)]+\.woff2)\)", body).group(1)
        rng = re.search(r"unicode-range:\s*([^;]+);", body)
        found.append({"name": m.group("name").strip(), "file": woff2,
                      "ranges": parse_ranges(rng.group(1)) if rng else []})
    return found


def book_characters() -> set[str]:
    """Every character of the notebooks (sources and outputs) and the book's markdown pages."""
    chars: set[str] = set()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        chars |= set(json.dumps(json.loads(path.read_text(encoding="utf-8")), ensure_ascii=False))
    for path in sorted(BOOK.glob("*.md")):
        chars |= set(path.read_text(encoding="utf-8"))
    return chars


def covers(ranges: list[tuple[int, int]], ch: str) -> bool:
    return any(lo <= ord(ch) <= hi for lo, hi in ranges)


def vendor(node_modules: Path) -> list[str]:
    """Copy the needed woff2 files and licences into OUT and write OUT/fonts.css; return the files."""
    needed = {c for c in book_characters() | set(ALWAYS) if ord(c) >= 0x2E80}  # CJK and beyond
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "files").mkdir(parents=True)
    blocks, files = [], []
    for package, family, which in PACKAGES:
        pkg = node_modules / "@fontsource" / package
        version = json.loads((pkg / "package.json").read_text())["version"]
        for face in faces((pkg / "400.css").read_text()):
            if which == "needed":
                take = any(covers(face["ranges"], c) for c in needed)
            else:
                take = any(face["name"] == f"{package}-{subset}-400-normal" for subset in which)
            if not take:
                continue
            shutil.copyfile(pkg / "files" / face["file"], OUT / "files" / face["file"])
            files.append(face["file"])
            ranges = ",".join(f"U+{lo:x}" if lo == hi else f"U+{lo:x}-{hi:x}" for lo, hi in face["ranges"])
            blocks.append(f"/* {face['name']} (@fontsource/{package} {version}) */\n"
                          "@font-face {\n"
                          f"  font-family: '{PREFIX}{family}';\n"
                          "  font-style: normal;\n  font-display: swap;\n  font-weight: 400;\n"
                          f"  src: url(files/{face['file']}) format('woff2');\n"
                          + (f"  unicode-range: {ranges};\n" if ranges else "") + "}\n")
        shutil.copyfile(pkg / "LICENSE", OUT / f"LICENSE-{package}.txt")
    header = ("/* The book's web fonts, written by book/fonts/vendor.py from the Fontsource packages\n"
              "   pinned in book/fonts/package-lock.json (SIL Open Font License 1.1, LICENSE-*.txt).\n"
              "   Used by xlt.css's font stacks, after the system fonts. Do not edit: rerun vendor.py. */\n")
    (OUT / "fonts.css").write_text(header + "\n".join(blocks), encoding="utf-8")
    return files


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(HERE / name, Path(tmp) / name)
        subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=tmp, check=True)
        files = vendor(Path(tmp) / "node_modules")
    size = sum((OUT / "files" / f).stat().st_size for f in files)
    print(f"{len(files)} font files, {size / 1024:.0f} KiB, in {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

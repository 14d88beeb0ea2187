#!/usr/bin/env bash
# The paper's system toolchain (pandoc, xelatex and its packages and fonts, pdftotext).
# "Present" means a document compiles: a `command -v` says nothing about fonts or packages.
#
#   paper/toolchain.sh packages  the Debian packages of paper/apt-packages.txt, on one line
#   paper/toolchain.sh probe     compile paper/probe.md with the paper's template and read it
#                                back; exit 0 when that works, else 1 and the first error
#   paper/toolchain.sh ensure [CONSEQUENCE]
#                                probe; when it fails, install the packages as root (apt-get)
#                                and probe again, or (not root) print one line: the error,
#                                CONSEQUENCE (default "the paper cannot be built") and the
#                                install command
#
# PANDOC, XELATEX and PDFTOTEXT name the commands (default: pandoc, xelatex, pdftotext).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pandoc="${PANDOC:-pandoc}" xelatex="${XELATEX:-xelatex}" pdftotext="${PDFTOTEXT:-pdftotext}"

packages() { sed -e 's/#.*//' "$here/apt-packages.txt" | xargs; }

# Compile the probe page as paper/build.py compiles the paper; on failure print, on one
# line, what failed and its first error (for xelatex the first "! " error of TeX's log).
probe() {
    local tmp out t
    for t in "$pandoc" "$xelatex" "$pdftotext"; do
        command -v "$t" >/dev/null || { echo "$t not found"; return 1; }
    done
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' RETURN
    if ! out="$(cd "$here/.." && "$pandoc" paper/probe.md --from markdown --to latex \
            --standalone --template paper/template.tex --citeproc \
            --bibliography paper/paper.bib --output "$tmp/probe.tex" 2>&1)"; then
        echo "pandoc failed: $(head -n 1 <<<"$out")"
        return 1
    fi
    # Run in tmp: font generators write missfont.log into the working directory.
    if ! out="$(cd "$tmp" && "$xelatex" -interaction=nonstopmode -halt-on-error \
            probe.tex </dev/null 2>&1)"; then
        echo "xelatex failed: $(grep -m1 -A1 '^! ' "$tmp/probe.log" 2>/dev/null | paste -sd '' \
            || tail -n 1 <<<"$out")"
        return 1
    fi
    "$pdftotext" "$tmp/probe.pdf" - 2>/dev/null | grep -q "toolchain probe works" \
        || { echo "$pdftotext did not read the probe back"; return 1; }
}

ensure() {
    local why
    why="$(probe)" && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "paper toolchain: probe failed ($why); installing: $(packages)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q && apt-get install -y -q --no-install-recommends $(packages) || return 1
        why="$(probe)" && { echo "paper toolchain: probe passes"; return 0; }
        echo "paper toolchain: still failing after the install: $why" >&2
        return 1
    fi
    local consequence="${1:-the paper cannot be built}"
    echo "paper toolchain: the probe page does not compile ($why), so $consequence;" \
         "install it with: sudo apt-get install --no-install-recommends $(packages)" >&2
    return 1
}

case "${1:-}" in
    packages) packages ;;
    probe) why="$(probe)" || { echo "$why" >&2; exit 1; } ;;
    ensure) ensure "${2:-}" ;;
    *) echo "usage: $0 packages | probe | ensure [what happens without it]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# chapters/diff.sh N: what chapter N adds to chapter N-1, the lesson in one
# diff (coloured on a terminal; `| less -R` keeps the colour).
set -euo pipefail
cd "$(dirname "$0")"

raw=false
if [ "${1:-}" = --raw ]; then
    raw=true
    shift
fi
if [ $# -ne 1 ] || ! [[ $1 =~ ^[0-9]+$ ]] || [ "$((10#$1))" -lt 2 ]; then
    echo "usage: chapters/diff.sh [--raw] N   (N from 02: the diff from chapter N-1 to N;" >&2
    echo "       --raw keeps the last chapter's chapter markers)" >&2
    exit 2
fi
n=$((10#$1))
dir() {
    local found
    found=$(ls -d "$(printf %02d "$1")"-*/ 2>/dev/null | head -n 1)
    [ -n "$found" ] || { echo "chapters/diff.sh: no chapter $(printf %02d "$1")" >&2; exit 2; }
    echo "${found%/}"
}
before=$(dir $((n - 1)))
after=$(dir "$n")

colour=never
[ -t 1 ] && colour=always
# The last chapter is src/ itself, markers and all (generate.rs); the others
# have none. Without --raw its markers are taken out here as the generator
# takes them out of the others, so every diff shows only code.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
code_only() {
    if $raw; then cat "$1"; return; fi
    sed -E -e '/^[[:space:]]*\/\/ (>>|<<) [0-9]{2}( |$)/d' \
        -e '/^[[:space:]]*\/\/ before [0-9]{2}: /d' \
        -e 's| // >> [0-9]{2}$||' "$1"
}
# The code only: the notes are different prose in every chapter.
mkdir "$tmp/$before" "$tmp/$after"
for file in $(ls "$before" "$after" | grep '\.rs$' | sort -u); do
    a=/dev/null b=/dev/null
    if [ -e "$before/$file" ]; then a=$before/$file; code_only "$a" >"$tmp/$a"; fi
    if [ -e "$after/$file" ]; then b=$after/$file; code_only "$b" >"$tmp/$b"; fi
    # git diff --no-index exits 1 when the files differ, which is the point.
    (cd "$tmp" && git diff --no-index --color="$colour" "$a" "$b") || [ $? -eq 1 ]
done

#!/usr/bin/env bash
# chapters/diff.sh N: what chapter N adds to chapter N-1, the lesson in one
# diff (coloured on a terminal; `| less -R` keeps the colour).
set -euo pipefail
cd "$(dirname "$0")"

if [ $# -ne 1 ] || ! [[ $1 =~ ^[0-9]+$ ]] || [ "$((10#$1))" -lt 2 ]; then
    echo "usage: chapters/diff.sh N   (N from 02: the diff from chapter N-1 to N)" >&2
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
# The code only: the notes are different prose in every chapter.
for file in $(ls "$before" "$after" | grep '\.rs$' | sort -u); do
    a=$before/$file b=$after/$file
    [ -e "$a" ] || a=/dev/null
    [ -e "$b" ] || b=/dev/null
    # git diff --no-index exits 1 when the files differ, which is the point.
    git diff --no-index --color="$colour" "$a" "$b" || [ $? -eq 1 ]
done

# Sourced by the scripts that hand a tar to `toybox unpack`: sets $toybox to
# $TOYBOX_BIN, else the repository's ./toybox, else the build's, else PATH's,
# and calls the script's own fail() when there is none.
here=$(cd "$(dirname "$0")/.." && pwd)
toybox=${TOYBOX_BIN:-}
if [ -z "$toybox" ]; then
    for candidate in "$here/toybox" "$here"/target/*/release/toybox; do
        if [ -x "$candidate" ]; then toybox=$candidate; break; fi
    done
fi
[ -n "$toybox" ] || toybox=$(command -v toybox 2>/dev/null) ||
    fail "no toybox binary: build it (make build) or set TOYBOX_BIN"

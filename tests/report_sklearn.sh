#!/usr/bin/env bash
# run.c's classification report against scikit-learn's (tests/report_sklearn.py), with
# Debian's Python and its python3-sklearn package, installed here when it is missing.
# (The python3 first on PATH may be another one, without scikit-learn.)
#
#   bash tests/report_sklearn.sh [BUILD_DIR]     (default tests/build, holding test_report)
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-tests/build}
PY=/usr/bin/python3

if ! "$PY" -c "import sklearn" 2>/dev/null; then
    as_root=()
    [ "$(id -u)" -eq 0 ] || as_root=(sudo -n)
    log="$BUILD/apt-sklearn.log"
    mkdir -p "$BUILD"
    echo "installing python3-sklearn (Debian) for $PY ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get install -y -q python3-sklearn >"$log" 2>&1 ||
        { "${as_root[@]}" apt-get update -q >>"$log" 2>&1 &&
              "${as_root[@]}" apt-get install -y -q python3-sklearn >>"$log" 2>&1; }
    if ! "$PY" -c "import sklearn" 2>/dev/null; then
        echo "FAIL report vs sklearn: $PY cannot import sklearn and apt-get install python3-sklearn failed (see $log)"
        exit 1
    fi
fi
exec "$PY" tests/report_sklearn.py "$BUILD/test_report"

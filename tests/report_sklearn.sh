#!/usr/bin/env bash
# run.c's classification report against scikit-learn's (tests/report_sklearn.py), with
# Debian's Python and its python3-sklearn package. The python3 first on PATH may be
# another one, without scikit-learn, so this uses /usr/bin/python3.
#
#   bash tests/report_sklearn.sh [BUILD_DIR]     (default tests/build/suite, holding test_report)
#
# Nothing is installed here (`make test` never changes the machine): without
# scikit-learn the comparison is one SKIP line that names the package to install
# (.ci/run installs it).
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-tests/build/suite}
PY=/usr/bin/python3

if ! "$PY" -c "import sklearn" 2>/dev/null; then
    echo "SKIP report vs scikit-learn: $PY cannot import sklearn (install the Debian package python3-sklearn)"
    exit 0
fi
exec "$PY" tests/report_sklearn.py "$BUILD/test_report"

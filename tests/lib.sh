# Shared by the test scripts (sourced): every check prints one line, "ok ...", "FAIL ..."
# or "SKIP ...", and is counted. TAG, when set (e.g. "[s390x] "), starts every line.
passed=0 failed=0 skipped=0
TAG=${TAG:-}

ok() { echo "ok $TAG$*"; passed=$((passed + 1)); }
fail() { echo "FAIL $TAG$*"; failed=$((failed + 1)); }
skip() { echo "SKIP $TAG$*"; skipped=$((skipped + 1)); }

# Runs a command and counts the "ok"/"FAIL"/"SKIP" lines it prints; a command that
# exits non-zero without printing a FAIL line, or prints no check line at all (its
# checks vanished), counts as one failure.
count() {
    local out status p f s
    out=$("$@" 2>&1)
    status=$?
    printf '%s\n' "$out" | grep -E '^(ok|FAIL|SKIP|    )' || true
    p=$(printf '%s\n' "$out" | grep -c '^ok ')
    f=$(printf '%s\n' "$out" | grep -c '^FAIL')
    s=$(printf '%s\n' "$out" | grep -c '^SKIP')
    if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
        printf '%s\n' "$out" | tail -n 5 | sed 's/^/    /'
        echo "FAIL $TAG$* exited with status $status"
        f=1
    elif [ $((p + f + s)) -eq 0 ]; then
        printf '%s\n' "$out" | tail -n 5 | sed 's/^/    /'
        echo "FAIL $TAG$* printed no check"
        f=1
    fi
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

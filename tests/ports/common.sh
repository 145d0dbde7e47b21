# What the cross tests and the Windows test share (sourced by cross-test.sh and
# windows-test.sh, after tests/lib.sh; TAG names the platform, e.g. "[s390x] ").

step_start=$SECONDS
step() {  # prints the time the previous step took, then the next step's name
    echo "   ($((SECONDS - step_start)) s)"
    step_start=$SECONDS
    echo "== $TAG$*"
}

# Installs the Debian packages given, if any (apt-get update first); exits on failure.
install_missing() {
    [ $# -gt 0 ] || return 0
    echo "apt-get install $*"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >/dev/null ||
        { fail "cannot install $*"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }
}

# build OUT SOURCE [FLAGS...]: compiles SOURCE into $BUILD/OUT with $CC $CFLAGS; a
# warning is a failure.
build() {
    local out=$1 src=$2 log
    shift 2
    # shellcheck disable=SC2086
    if ! log=$($CC $CFLAGS "$@" -o "$BUILD/$out" "$src" -lm 2>&1); then
        fail "build $out: $log"
        return 1
    fi
    # (the linker's note on libgomp's dlopen in a static program: not about our code)
    log=$(grep -v -e "in function \`goacc_profiling_initialize'" -e "Using 'dlopen' in statically linked" <<<"$log")
    if [ -n "$log" ]; then fail "build $out: warnings"; printf '%s\n' "$log" | head -n 20; return 0; fi
    ok "build $out with $CC, no warnings"
}

# The golden tests on another platform:
#
#   golden_tests EXE WHERE RUN RUNNER...
#
# exports the fixtures natively (the model file is the same for every platform), then
# runs the test programs tests/build/.../test_*EXE through RUNNER... (qemu, wine) and the
# command-line golden tests with RUN, a script that runs that platform's ./run. WHERE
# names the runner in the step titles. Needs BUILD and FIX.
golden_tests() {
    local exe=$1 where=$2 run=$3 m
    shift 3
    step "export the fixtures (natively: one file for every platform)"
    MODELS="tiny-smollm2 tiny-untied-mha-f32 tiny-mqa-f16 tiny-llama3 tiny-qwen2"
    for m in $MODELS; do
        if ./export -q "$FIX/hf/$m" "$BUILD/$m.bin" 2>"$BUILD/$m.export.log" &&
            ./export -q --dtype q8_0 "$FIX/hf/$m" "$BUILD/$m-q8_0.bin" 2>>"$BUILD/$m.export.log"; then
            ok "export $m (f32, q8_0)"
        else
            fail "export $m: $(cat "$BUILD/$m.export.log")"
        fi
    done
    python3 tests/chat_renderings.py "$FIX/chat_templates/renderings.json" "$FIX/tokenizers/real-smollm2/cases.json" \
        >"$BUILD/renderings.tsv"
    python3 tests/utf8_replace.py >"$BUILD/utf8.tsv"

    step "units under $where"
    count "$@" "$BUILD/test_units$exe" "$BUILD/renderings.tsv" "$BUILD/utf8.tsv"

    step "golden: logits and greedy ids against Hugging Face, under $where"
    for m in $MODELS; do
        count "$@" "$BUILD/test_model$exe" "$BUILD/$m.bin" "$FIX/hf/$m"
        count "$@" "$BUILD/test_model$exe" "$BUILD/$m-q8_0.bin" "$FIX/hf/$m" consistency
    done

    step "tokenizer against Hugging Face tokenizers, under $where"
    count "$@" "$BUILD/test_tokenizer$exe" "$BUILD/tiny-smollm2.bin" "$FIX/tokenizers/tiny-gpt2"
    count "$@" "$BUILD/test_tokenizer$exe" "$BUILD/tiny-llama3.bin" "$FIX/tokenizers/tiny-llama3"
    count "$@" "$BUILD/test_tokenizer$exe" "$BUILD/tiny-qwen2.bin" "$FIX/tokenizers/tiny-qwen2"

    step "golden through the command line (tokenize, generate, chat, --dump-logits), run under $where"
    for m in $MODELS; do count python3 tests/cli_golden.py "$run" "$BUILD/$m.bin" "$FIX/hf/$m" "$BUILD"; done
    if out=$("$run" "$BUILD/tiny-smollm2.bin" --verify 2>&1); then ok "--verify: $out"; else fail "--verify: $out"; fi
}

# The golden tests on another platform (sourced by cross-test.sh and windows-test.sh):
#
#   golden_tests EXE WHERE RUN RUNNER...
#
# exports the fixtures natively (the model file is the same for every platform), then
# runs the test programs tests/build/.../test_*EXE through RUNNER... (qemu, wine) and the
# command-line golden tests with RUN, a script that runs that platform's ./run. WHERE
# names the runner in the step titles. Needs BUILD, FIX, step() and tests/lib.sh.
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

    step "units under $where"
    count "$@" "$BUILD/test_units$exe" "$BUILD/renderings.tsv"

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

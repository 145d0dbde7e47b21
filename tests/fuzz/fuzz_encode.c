// fuzz_encode.c: libFuzzer target: tokenizer_encode of arbitrary bytes.
//
// The first byte picks the tokenizer (mod 4): byte-level BPE with the SmolLM2/GPT-2
// pre-tokenizer, Llama 3 (its regex and ignore_merges), Qwen2 (its regex and NFC), or
// SentencePiece with byte fallback; the rest is the text. Checked (fuzz_common.h):
// encode returns -1 exactly when the text is not valid UTF-8 (by an independent
// validator); every id is in the vocab and there are at most tokenizer_max_ids; the ids
// are those of a naive reimplementation of the encoder (texts up to 1 KB); decoding them
// gives the text back (NFC-normalized for Qwen2, without the few bytes the SmolLM2-style
// vocab has no token for, with SentencePiece's dummy-prefix space); NFC is idempotent.
//
//   tests/fuzz/run.sh fuzz_encode   (builds, makes the models, runs)

#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    load_models();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const Tokenizer *t = &models[data[0] % N_KINDS].tokenizer;
    check_encode(t, (const char *)data + 1, size - 1, 1024, NULL);
    return 0;
}

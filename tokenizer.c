// tokenizer.c: text <-> token ids for run.c.
//
// INTERFACE (run.c includes this file; the tables come straight from the model file,
// see FORMAT.md "Tokenizer"):
//
//   typedef struct { uint32_t offset, bytes; float score; uint32_t flags; } TokenRecord;
//   enum { TOKEN_ADDED = 1, TOKEN_SPECIAL = 2, TOKEN_BYTE = 4 };
//   enum { TOKENIZER_BYTE_BPE = 1, TOKENIZER_SENTENCEPIECE = 2 };
//   enum { PRETOK_NONE = 0, PRETOK_SMOLLM2 = 1, PRETOK_LLAMA3 = 2, PRETOK_QWEN2 = 3 };
//   enum { NORM_NONE = 0, NORM_NFC = 1 };
//
//   typedef struct {                 // what the model file says (pointers into the mmap)
//       int type, pretokenizer, normalizer, ignore_merges;
//       int vocab_size;  const TokenRecord *tokens;   // [vocab_size]
//       int n_merges;    const uint32_t *merges;      // [n_merges][3] left, right, result
//       const char *strings; uint64_t strings_bytes;
//   } TokenizerSpec;
//
//   typedef struct Tokenizer Tokenizer;   // the spec plus lookup tables built at load
//
//   // Validates the spec (string ranges, merge ids < vocab, ...) and builds the lookup
//   // tables. Returns NULL on success, else a static message naming the problem.
//   const char *tokenizer_build(Tokenizer *t, const TokenizerSpec *spec);
//   void tokenizer_free(Tokenizer *t);
//
//   // Encodes len bytes of UTF-8 text, exactly like Hugging Face
//   // `tokenizer.encode(text, add_special_tokens=False)` (no BOS). Added tokens in the
//   // text are matched atomically. ids must have room for len + 2 ids.
//   // Returns the number of ids, or -1 if the text is not valid UTF-8.
//   int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int *ids);
//
//   // The bytes to print for token `id` following token `prev` (-1 at the start):
//   // SentencePiece drops the leading space of the first piece after BOS.
//   const char *tokenizer_decode(const Tokenizer *t, int prev, int id, size_t *len);

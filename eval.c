// eval.c: the workflows of run.c beside generation and chat, built into the same ./run
// (run.c includes this file after its generation and chat section, and uses what it
// defines there):
//
//   -m perplexity -i FILE     teacher-forced log-probabilities, mean NLL, perplexity
//   -m classify -i FILE.tsv   a chat model as a classifier, with scikit-learn's
//                             classification report and a confusion matrix
//   --batch FILE              many prompts, one JSON object per answer (JSON Lines)
//   --info                    the model's hyperparameters, tensors and tokenizer
//   -m tokenize --pieces      each token's id and text
//   --help, --version         the options, and how ./run was built

// log p(id) under the softmax of the logits, computed in double: log_softmax(x)_id =
// x_id - max - log(sum_j exp(x_j - max)).
static double log_prob(const float *logits, int n, int id) {
    float max = logits[argmax(logits, n)];
    double sum = 0.0;
    for (int j = 0; j < n; j++) sum += exp((double)logits[j] - max);
    return (double)logits[id] - max - log(sum > 0.0 ? sum : 1.0);  // sum >= 1: exp(max - max)
}

// Writes s to f with tabs, newlines and backslashes escaped, so one token is one field.
static void write_escaped(FILE *f, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\t') fputs("\\t", f);
        else if (s[i] == '\n') fputs("\\n", f);
        else if (s[i] == '\r') fputs("\\r", f);
        else if (s[i] == '\\') fputs("\\\\", f);
        else fputc(s[i], f);
    }
}

// Teacher-forced scoring of a text: every token's log-probability given the tokens
// before it, one line each (id, log p, the token's text), then the mean negative
// log-likelihood and the perplexity exp(mean NLL) over the n - 1 predicted tokens.
static void perplexity(Session *ss, const int *ids, int n, FILE *out) {
    int vocab = ss->model->config.vocab_size;
    double nll = 0.0;
    for (int i = 0; i < n; i += BATCH) {
        int block = n - i < BATCH ? n - i : BATCH;
        float *logits = session_forward(ss, ids + i, block, 1);
        for (int t = 0; t < block && i + t + 1 < n; t++) {
            int next = ids[i + t + 1];
            double lp = log_prob(logits + (size_t)t * vocab, vocab, next);
            nll -= lp;
            size_t len;
            const char *piece = tokenizer_decode(&ss->model->tokenizer, ids[i + t], next, &len);
            fprintf(out, "%d\t%.6f\t", next, lp);
            write_escaped(out, piece, len);
            fputc('\n', out);
        }
        flush_or_exit(out);  // a full disk ends the run now, not after the whole text
    }
    int predicted = n - 1;
    fprintf(out, "tokens %d, predicted %d, mean NLL %.6f, perplexity %.6f\n", n, predicted,
            predicted > 0 ? nll / predicted : 0.0, predicted > 0 ? exp(nll / predicted) : 1.0);
    flush_or_exit(out);
}

// The most bytes of text that seq_len tokens can stand for. A token stands for at most
// the bytes of the longest token in the vocabulary, and what the tokenizer does first
// shrinks a text at most 3 times (NFC composes a Hangul syllable of 9 bytes into one of
// 3; SentencePiece reads the 3 bytes of U+2581 as one space). A longer text is more
// tokens than the context holds, whatever it says.
static size_t max_text_bytes(const Tokenizer *t, int seq_len) {
    uint64_t longest = 1;
    for (int i = 0; i < t->spec.vocab_size; i++)
        if (t->spec.tokens[i].bytes > longest) longest = t->spec.tokens[i].bytes;
    uint64_t bytes = 3 * longest * (uint64_t)seq_len;  // < 3 * 2^32 * 2^22: no overflow
    return bytes < SIZE_MAX ? (size_t)bytes : SIZE_MAX - 1;
}

// Ends the program if a text of size bytes is more than the context can hold (see
// max_text_bytes) or than the tokenizer takes.
static void check_text_size(const char *path, uint64_t size, size_t fits, int seq_len) {
    if (size > fits)
        fatal("%s is too long: the %d-token context (see -c) holds at most %zu bytes of text with this "
              "tokenizer, and the file has %llu", path, seq_len, fits, (unsigned long long)size);
    if (size > TOKENIZER_MAX_TEXT)
        fatal("%s is too long: the tokenizer takes at most %zu bytes of text", path, (size_t)TOKENIZER_MAX_TEXT);
}

// -m perplexity -i FILE: the text of FILE scored by the model. A file too long for the
// context is refused by its size, before it is read; a pipe, once read.
static void run_perplexity(Session *ss, const char *path) {
    if (!path) fatal("-m perplexity needs -i FILE, the text to score");
    size_t fits = max_text_bytes(&ss->model->tokenizer, ss->state.seq_len), size;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) check_text_size(path, (uint64_t)st.st_size, fits, ss->state.seq_len);
    char *text = read_file(path, &size);
    check_text_size(path, size, fits, ss->state.seq_len);
    if (strlen(text) != size) fatal("%s contains a NUL byte: it is not a text file", path);
    int n;
    int *ids = encode(ss->model, text, ss->model->gen.add_bos, &n);
    if (!ids) fatal("%s is not valid UTF-8", path);
    if (n < 2) fatal("%s has fewer than 2 tokens: nothing to score", path);
    if (n > ss->state.seq_len) fatal("%s is %d tokens, longer than the context (%d; see -c)", path, n, ss->state.seq_len);
    perplexity(ss, ids, n, stdout);
    free(ids);
    free(text);
}

// ----------------------------------------------------------------------------
// Evaluation: a chat model as a classifier, and batches of prompts

// The prompt of a one-turn conversation: the chat template's rendering of the system
// prompt and one user message, or, for a model without a chat template, the user text.
static int *encode_single_turn(const Model *m, const char *system, const char *user, const char *date, int *n) {
    Text t = {0};
    int bos = m->gen.chat_template == CHAT_NONE && m->gen.add_bos;
    if (m->gen.chat_template == CHAT_NONE) text_puts(&t, user);
    else render_turn(&t, &m->gen, system, user, 1, date);
    int *ids = encode(m, t.data, bos, n);
    text_free(&t);
    return ids;
}

// log P(cont | prompt) = sum_i log p(cont_i | prompt, cont_<i), with prompt in the
// cache: rewinds to before the prompt's last token and runs it with cont[0..n-2].
static double score_continuation(Session *ss, const int *prompt, int n_prompt, const int *cont, int n_cont) {
    int vocab = ss->model->config.vocab_size;
    int seq[BATCH];
    double lp = 0.0;
    ss->pos = n_prompt - 1;
    for (int i = 0; i < n_cont; i += BATCH) {
        int block = n_cont - i < BATCH ? n_cont - i : BATCH;
        for (int t = 0; t < block; t++) seq[t] = i + t == 0 ? prompt[n_prompt - 1] : cont[i + t - 1];
        float *logits = session_forward(ss, seq, block, 1);
        for (int t = 0; t < block; t++) lp += log_prob(logits + (size_t)t * vocab, vocab, cont[i + t]);
    }
    return lp;
}

// An answer compared the way a notebook's `answer.strip().upper() == label` would,
// a little more forgiving: whitespace and punctuation around it do not count, and case
// does not matter (ASCII).
static void normalise_label(Text *out, const char *s, size_t n) {
    while (n > 0 && (isspace((unsigned char)s[0]) || ispunct((unsigned char)s[0]))) s++, n--;
    while (n > 0 && (isspace((unsigned char)s[n - 1]) || ispunct((unsigned char)s[n - 1]))) n--;
    out->len = 0;
    text_append(out, s, n);
    for (size_t i = 0; i < out->len; i++) out->data[i] = (char)toupper((unsigned char)out->data[i]);
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// The sorted distinct strings of a and b (n each), as scikit-learn's unique_labels.
static char **distinct_labels(char **a, char **b, int n, int *n_out) {
    size_t total = 2 * (size_t)n, k = 0;
    char **all = xcalloc(total, sizeof(char *));
    memcpy(all, a, (size_t)n * sizeof(char *));
    memcpy(all + n, b, (size_t)n * sizeof(char *));
    qsort(all, total, sizeof(char *), compare_strings);
    for (size_t i = 0; i < total; i++)
        if (k == 0 || strcmp(all[k - 1], all[i])) all[k++] = all[i];
    *n_out = (int)k;  // at most 2n: read_rows keeps n at most MAX_ROWS
    return all;
}

// The sum of a[0..n) in the order numpy's add.reduce adds a contiguous float64 array
// (pairwise, 8 accumulators), so that averages round exactly as sklearn's np.average.
static double numpy_sum(const double *a, int n) {
    if (n < 8) {
        double s = 0.0;
        for (int i = 0; i < n; i++) s += a[i];
        return s;
    }
    if (n <= 128) {
        double r[8];
        int i;
        for (int j = 0; j < 8; j++) r[j] = a[j];
        for (i = 8; i < n - n % 8; i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) s += a[i];
        return s;
    }
    int half = n / 2;
    half -= half % 8;
    return numpy_sum(a, half) + numpy_sum(a + half, n - half);
}

// The number of characters of a UTF-8 string (Python's len(), which sklearn pads by).
static int utf8_chars(const char *s) {
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

// s right-aligned in a field of width characters.
static void put_right(FILE *f, const char *s, int width) {
    for (int i = utf8_chars(s); i < width; i++) fputc(' ', f);
    fputs(s, f);
}

// The number of the class each label is, for the rows of the confusion matrix.
static size_t class_index(char **classes, size_t k, const char *label) {
    size_t c = 0;
    while (c < k - 1 && strcmp(classes[c], label)) c++;
    return c;
}

// The confusion matrix, rows: gold, columns: predicted, only while it stays readable.
#define MATRIX_MAX_CLASSES 100

static void print_confusion(FILE *f, char **classes, size_t k, const int *confusion, int width) {
    if (k > MATRIX_MAX_CLASSES) {
        fprintf(f, "\nconfusion matrix left out: %zu classes (it is printed up to %d)\n", k, MATRIX_MAX_CLASSES);
        return;
    }
    fprintf(f, "\nconfusion matrix (rows: gold, columns: predicted)\n%*s", width, "");
    for (size_t c = 0; c < k; c++) {
        fputc(' ', f);
        put_right(f, classes[c], utf8_chars(classes[c]) > 6 ? utf8_chars(classes[c]) : 6);
    }
    fputc('\n', f);
    for (size_t g = 0; g < k; g++) {
        put_right(f, classes[g], width);
        for (size_t c = 0; c < k; c++)
            fprintf(f, " %*d", utf8_chars(classes[c]) > 6 ? utf8_chars(classes[c]) : 6, confusion[g * k + c]);
        fputc('\n', f);
    }
}

// scikit-learn's classification_report(gold, pred, zero_division=0), to the character:
// per class precision = tp / predicted, recall = tp / support, f1 = 2pr / (p + r)
// (0 where a denominator is 0); accuracy; the unweighted mean over classes (macro
// avg) and the mean weighted by support (weighted avg). Then the confusion matrix.
static void classification_report(FILE *f, char **gold, char **pred, int n) {
    int n_classes;
    char **classes = distinct_labels(gold, pred, n, &n_classes);
    size_t k = (size_t)n_classes;
    int *confusion = xcalloc(k * k, sizeof(int));
    for (int i = 0; i < n; i++) confusion[class_index(classes, k, gold[i]) * k + class_index(classes, k, pred[i])]++;
    int correct = 0;
    for (size_t c = 0; c < k; c++) correct += confusion[c * k + c];
    // sklearn's quirk: with no correct prediction at all its supports are floats ("16.0")
    const char *support_fmt = correct ? " %9.0f\n" : " %9.1f\n";
    int width = 12;  // strlen("weighted avg")
    for (size_t c = 0; c < k; c++)
        if (utf8_chars(classes[c]) > width) width = utf8_chars(classes[c]);
    fprintf(f, "%*s  %9s %9s %9s %9s\n\n", width, "", "precision", "recall", "f1-score", "support");
    double *v = xcalloc(6 * k, sizeof(double));  // precision, recall, f1; then * support
    for (size_t c = 0; c < k; c++) {
        int tp = confusion[c * k + c], support = 0, predicted = 0;
        for (size_t j = 0; j < k; j++) support += confusion[c * k + j], predicted += confusion[j * k + c];
        double precision = predicted ? (double)tp / predicted : 0.0;
        double recall = support ? (double)tp / support : 0.0;
        double f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
        v[c] = precision, v[k + c] = recall, v[2 * k + c] = f1;
        for (size_t j = 0; j < 3; j++) v[(3 + j) * k + c] = v[j * k + c] * support;
        put_right(f, classes[c], width);
        fprintf(f, "  %9.2f %9.2f %9.2f", precision, recall, f1);
        fprintf(f, support_fmt, (double)support);
    }
    double a = (double)correct / n;  // sklearn 1.2 computes it as the f1 of the micro average
    fprintf(f, "\n%*s  %9s %9s %9.2f", width, "accuracy", "", "", a > 0 ? 2 * a * a / (a + a) : 0.0);
    fprintf(f, support_fmt, (double)n);
    fprintf(f, "%*s ", width, "macro avg");
    for (size_t j = 0; j < 3; j++) fprintf(f, " %9.2f", numpy_sum(v + j * k, n_classes) / n_classes);
    fprintf(f, support_fmt, (double)n);
    fprintf(f, "%*s ", width, "weighted avg");
    for (size_t j = 0; j < 3; j++) fprintf(f, " %9.2f", numpy_sum(v + (3 + j) * k, n_classes) / n);
    fprintf(f, support_fmt, (double)n);
    free(v);
    print_confusion(f, classes, k, confusion, width);
    free(confusion);
    free(classes);
}

typedef struct {
    const char *system;     // the system prompt (NULL: the model's default)
    const char *template_;  // the user message; {text} is replaced by the row's text
    const char *labels;     // comma-separated classes, or NULL: those of the file
    int free_answer;        // generate an answer and match it instead of scoring
    int max_new_tokens;     // for free answers
} ClassifyOptions;

// The user message for one row: the template with every {text} replaced.
static void fill_template(Text *out, const char *template_, const char *text) {
    out->len = 0;
    text_append(out, "", 0);
    for (const char *p = template_; *p;) {
        if (!strncmp(p, "{text}", 6)) text_puts(out, text), p += 6;
        else text_append(out, p++, 1);
    }
}

// The rows of a TSV file of size bytes (a header line, then text<TAB>label), cut in
// place in data: texts[i] and gold[i] point into it. Returns the number of rows, at most
// MAX_ROWS (so that counts of rows, and of gold and predicted labels together, stay in
// an int). A NUL byte or a CR that does not end a line is refused: either would cut a
// line short, and the rows after it would be lost without a word.
#define MAX_ROWS (1 << 28)

static int read_rows(char *data, size_t size, const char *path, char ***texts, char ***gold) {
    const char *nul = memchr(data, '\0', size);
    if (nul) {
        int at = 1;
        for (const char *p = data; p < nul; p++) at += *p == '\n';
        fatal("%s:%d: a NUL byte: this is not a UTF-8 text file (UTF-16?)", path, at);
    }
    int n = 0, cap = 0, line_no = 0;
    for (char *line = data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\r') line[--len] = '\0';  // a CR LF line end
        if (memchr(line, '\r', len))  // old Mac line ends, or a stray CR: nothing is dropped unseen
            fatal("%s:%d: a carriage return inside the line (lines end with LF or CR LF)", path, line_no + 1);
        if (line_no++ == 0 || !*line) continue;  // the header, blank lines
        char *tab = strrchr(line, '\t');
        if (!tab) fatal("%s:%d: expected text<TAB>label", path, line_no);
        if (!tab[1]) fatal("%s:%d: the label (after the last tab) is empty", path, line_no);
        *tab = '\0';
        if (n == MAX_ROWS) fatal("%s has more than %d rows", path, MAX_ROWS);
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            *texts = realloc(*texts, (size_t)cap * sizeof(char *));
            *gold = realloc(*gold, (size_t)cap * sizeof(char *));
            if (!*texts || !*gold) fatal("out of memory");
        }
        (*texts)[n] = line;
        (*gold)[n++] = tab + 1;
    }
    if (n == 0) fatal("%s has no rows (a header line, then text<TAB>label lines)", path);
    return n;
}

// The classes and, for scoring, each label's tokens followed by the end-of-turn token.
typedef struct {
    int n;
    char **names;       // (n)
    char *buffer;       // --labels, cut at the commas
    int **ids;          // (n) each (len[l])
    int *len;           // (n)
    int longest;        // the longest len, for the context check
} Labels;

// The most classes a classification takes. More is a mistake, such as a file whose
// columns are swapped (every text a class of its own), and the report would grow with
// the square of their number.
#define MAX_CLASSES 1000

// --labels A,B,C: the classes, in that order. An empty or a repeated label is a typo.
static void labels_from_list(Labels *lb, const char *list) {
    lb->buffer = xcalloc(strlen(list) + 1, 1);
    strcpy(lb->buffer, list);
    lb->names = xcalloc(strlen(list) + 1, sizeof(char *));
    for (char *l = lb->buffer, *comma;; l = comma + 1) {
        comma = strchr(l, ',');
        if (comma) *comma = '\0';
        if (!*l) fatal("--labels '%s' has an empty label (two commas in a row, or one at an end)", list);
        for (int j = 0; j < lb->n; j++)
            if (!strcmp(lb->names[j], l)) fatal("--labels '%s' names the label '%s' twice", list, l);
        if (lb->n == MAX_CLASSES) fatal("--labels names more than %d labels", MAX_CLASSES);
        lb->names[lb->n++] = l;
        if (!comma) break;
    }
}

// The labels of the file: its distinct gold labels, in the order they first appear.
static void labels_from_gold(Labels *lb, const char *path, char **gold, int n) {
    lb->names = xcalloc(MAX_CLASSES, sizeof(char *));
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int j = 0; j < lb->n && !seen; j++) seen = !strcmp(lb->names[j], gold[i]);
        if (seen) continue;
        if (lb->n == MAX_CLASSES)
            fatal("%s has more than %d distinct labels: is the label the last field of every line "
                  "(text<TAB>label), and not the text?", path, MAX_CLASSES);
        lb->names[lb->n++] = gold[i];
    }
}

// --free matches an answer to a label as normalise_label writes both: two labels that
// it writes the same (POS and pos.) could not be told apart.
static void refuse_ambiguous(const Labels *lb) {
    Text a = {0}, b = {0};
    for (int i = 0; i < lb->n; i++)
        for (int j = i + 1; j < lb->n; j++) {
            normalise_label(&a, lb->names[i], strlen(lb->names[i]));
            normalise_label(&b, lb->names[j], strlen(lb->names[j]));
            if (!strcmp(a.data, b.data))
                fatal("--free cannot tell the labels '%s' and '%s' apart (case and punctuation around an "
                      "answer do not count)", lb->names[i], lb->names[j]);
        }
    text_free(&a);
    text_free(&b);
}

// --labels, else the file's labels; then each label's tokens. With --labels, every gold
// label must be one of them: a report over classes that were never asked for would
// count every such row as wrong, and a misspelt label is then found before the run.
static void labels_build(Labels *lb, const Model *m, const char *list, const char *path, char **gold, int n) {
    memset(lb, 0, sizeof(*lb));
    if (list) labels_from_list(lb, list);
    else labels_from_gold(lb, path, gold, n);
    if (lb->n < 2) fatal("classification needs at least two labels (--labels a,b,c)");
    for (int i = 0; list && i < n; i++) {
        int known = 0;
        for (int l = 0; l < lb->n && !known; l++) known = !strcmp(lb->names[l], gold[i]);
        if (!known) fatal("%s: row %d has the label '%.80s', which is not one of --labels '%s'", path, i + 1, gold[i], list);
    }
    lb->ids = xcalloc((size_t)lb->n, sizeof(int *));
    lb->len = xcalloc((size_t)lb->n, sizeof(int));
    for (int l = 0; l < lb->n; l++) {
        lb->ids[l] = encode(m, lb->names[l], 0, &lb->len[l]);
        if (!lb->ids[l] || lb->len[l] == 0) fatal("label '%s' is empty or not valid UTF-8", lb->names[l]);
        if (m->gen.eot_id >= 0) lb->ids[l][lb->len[l]++] = m->gen.eot_id;  // encode left room
        lb->longest = lb->len[l] > lb->longest ? lb->len[l] : lb->longest;
    }
}

static void labels_free(Labels *lb) {
    for (int l = 0; l < lb->n; l++) free(lb->ids[l]);
    free(lb->ids); free(lb->len); free(lb->names); free(lb->buffer);
}

// The label an answer of n bytes matches (see normalise_label), "invalid" if none.
static const char *match_label(const Labels *lb, const char *answer, size_t n) {
    Text norm = {0}, norm_label = {0};
    normalise_label(&norm, answer, n);
    const char *pred = "invalid";
    for (int l = 0; l < lb->n; l++) {
        normalise_label(&norm_label, lb->names[l], strlen(lb->names[l]));
        if (!strcmp(norm.data, norm_label.data)) pred = lb->names[l];
    }
    text_free(&norm);
    text_free(&norm_label);
    return pred;
}

// --free: a greedy answer into answer, matched to a label.
static const char *classify_free(Session *ss, const Labels *lb, const int *ids, int n_prompt, Text *answer) {
    answer->len = 0;
    text_append(answer, "", 0);
    session_generate(ss, ids + ss->pos, n_prompt - ss->pos, NULL, answer);
    return match_label(lb, answer->data, answer->len);
}

// Constrained: every label is scored by the log-probability of its tokens as the
// assistant's answer; prob (n labels) gets the softmax of the scores. Returns the best.
static int classify_scored(Session *ss, const Labels *lb, const int *ids, int n_prompt, double *prob) {
    for (int k = ss->pos; k < n_prompt; k += BATCH)
        session_forward(ss, ids + k, n_prompt - k < BATCH ? n_prompt - k : BATCH, 0);
    int best = 0;
    for (int l = 0; l < lb->n; l++) {
        prob[l] = score_continuation(ss, ids, n_prompt, lb->ids[l], lb->len[l]);
        if (prob[l] > prob[best]) best = l;
    }
    double top = prob[best], total = 0.0;
    for (int l = 0; l < lb->n; l++) total += prob[l] = exp(prob[l] - top);
    for (int l = 0; l < lb->n; l++) prob[l] /= total;
    ss->pos = n_prompt;  // the cache now ends with the last label: keep the prompt
    return best;
}

// What the prompts of the rows share: the chat's system prompt and date, the template.
typedef struct {
    const Session *ss;
    const ClassifyOptions *co;
    const char *path;
    char date[32];
    int answer_tokens;  // the room an answer needs in the context
    Text user;
} RowPrompts;

// The ids of row i's prompt (malloc'ed, *n of them): the template filled with its text,
// as the user turn of a one-turn chat. Text that is not UTF-8 ends the program.
static int *row_prompt(RowPrompts *rp, const char *text, int i, int *n) {
    fill_template(&rp->user, rp->co->template_, text);
    int *ids = encode_single_turn(rp->ss->model, rp->co->system, rp->user.data, rp->date, n);
    if (!ids && utf8_is_valid(text, strlen(text))) fatal("the system prompt (-y) or --template is not valid UTF-8");
    if (!ids) fatal("%s: row %d is not valid UTF-8", rp->path, i + 1);
    return ids;
}

// Every row's prompt has a token and fits in the context with its answer: checked before
// the first row runs, so that a bad row 900 does not end a long run, nor leave a file.
static void check_rows(RowPrompts *rp, char **texts, int n) {
    int seq_len = rp->ss->state.seq_len;
    for (int i = 0; i < n; i++) {
        int tokens;
        free(row_prompt(rp, texts[i], i, &tokens));
        if (tokens == 0) fatal("%s: row %d is an empty prompt: nothing to classify", rp->path, i + 1);
        if (tokens > seq_len - rp->answer_tokens)
            fatal("%s: row %d needs %d tokens, more than the context (%d; see -c)", rp->path, i + 1,
                  tokens + rp->answer_tokens, seq_len);
    }
}

// Every row reaches its file as soon as it is done (a long run can be watched, and an
// interrupted one keeps its rows); a write that fails ends the program.
static void flush_rows(FILE *rows, const char *output) {
    if (!output) flush_or_exit(rows);
    else if (fflush(rows) != 0 || ferror(rows)) fatal("cannot write %s: %s", output, strerror(errno));
}

// -m classify -i FILE.tsv: classifies every row of a TSV file (a header line, then
// text<TAB>label) with the prompt, prints one line per row (predicted label, gold label,
// then the probabilities of the labels, or the raw answer with --free) and a report.
// The KV cache of the prompt's shared head (system prompt, template) is reused from
// row to row. Ctrl-C during a --free answer marks its row "interrupted" (where the
// prediction would be) and ends the run, keeping the rows done, without a report.
static void classify_file(Session *ss, const char *path, const ClassifyOptions *co, const char *output) {
    size_t size;
    char *data = read_file(path, &size), **texts = NULL, **gold = NULL;
    int n = read_rows(data, size, path, &texts, &gold);
    Labels lb;
    labels_build(&lb, ss->model, co->labels, path, gold, n);
    if (co->free_answer) refuse_ambiguous(&lb);
    RowPrompts rp = {ss, co, path, "", co->free_answer ? (co->max_new_tokens > 0 ? co->max_new_tokens : 1) : lb.longest, {0}};
    today(rp.date, sizeof(rp.date));
    check_rows(&rp, texts, n);
    FILE *rows = output ? fopen(output, "wb") : stdout;  // only now: a bad row leaves no file
    if (!rows) fatal("cannot write %s: %s", output, strerror(errno));
    const char **pred = xcalloc((size_t)n, sizeof(char *));
    double *prob = xcalloc((size_t)lb.n, sizeof(double));
    Text answer = {0};
    double t0 = now_seconds();
    long long reused = 0, processed = 0;
    for (int i = 0; i < n; i++) {
        int n_prompt, *ids = row_prompt(&rp, texts[i], i, &n_prompt);
        reused += session_reuse_prefix(ss, ids, n_prompt);
        processed += n_prompt;
        int interrupted = 0;
        if (co->free_answer) {
            pred[i] = classify_free(ss, &lb, ids, n_prompt, &answer);
            interrupted = stop_answer;  // on_interrupt cut the answer short
            fprintf(rows, "%s\t%s\t", interrupted ? "interrupted" : pred[i], gold[i]);
            write_escaped(rows, answer.data, answer.len);
        } else {
            pred[i] = lb.names[classify_scored(ss, &lb, ids, n_prompt, prob)];
            fprintf(rows, "%s\t%s", pred[i], gold[i]);
            for (int l = 0; l < lb.n; l++) fprintf(rows, "\t%s=%.4f", lb.names[l], prob[l]);
        }
        fputc('\n', rows);
        flush_rows(rows, output);
        free(ids);
        if (interrupted) {
            fprintf(stderr, "[interrupted at row %d of %d: the rows before it are complete; no report]\n", i + 1, n);
            exit(130);  // as a Ctrl-C outside an answer ends the program (on_interrupt)
        }
    }
    fprintf(stderr, "[%d rows in %.1f s; %lld of %lld prompt tokens reused from the cache]\n", n,
            now_seconds() - t0, reused, processed);
    printf("\n");
    classification_report(stdout, gold, (char **)pred, n);
    flush_or_exit(stdout);
    if (rows != stdout && fclose(rows) != 0) fatal("cannot write %s: %s", output, strerror(errno));
    text_free(&rp.user);
    text_free(&answer);
    labels_free(&lb);
    free(prob); free(pred); free(texts); free(gold); free(data);
}

// -m classify -i FILE.tsv, its rows to stdout or to the file output.
static void run_classify(Session *ss, const char *path, const ClassifyOptions *co, const char *output) {
    if (!path) fatal("-m classify needs -i FILE.tsv (a header line, then text<TAB>label lines)");
    ss->sampler.cfg.temperature = 0.0f;  // free answers are greedy, as the notebook's
    classify_file(ss, path, co, output);
}

// One line of a batch file: a plain prompt, or a flat JSON object.
typedef struct {
    Text prompt, system;
    int has_system;
    SamplerConfig sampler;
    int max_new_tokens;
} BatchItem;

// The keys of a JSON line and the values each takes. An integer is a JSON number
// without a fractional part (2 or 2.0, not 2.7); a seed stays below 2^53, where every
// JSON reader still holds an integer exactly.
enum {
    KEY_PROMPT, KEY_SYSTEM, KEY_TEMPERATURE, KEY_TOP_K, KEY_TOP_P, KEY_REPETITION_PENALTY, KEY_SEED,
    KEY_MAX_NEW_TOKENS, N_BATCH_KEYS
};
enum { VALUE_STRING, VALUE_NUMBER, VALUE_INTEGER };
static const struct {
    const char *name;
    int type;
    double lo, hi;
} BATCH_KEYS[N_BATCH_KEYS] = {
    [KEY_PROMPT] = {"prompt", VALUE_STRING, 0, 0},
    [KEY_SYSTEM] = {"system", VALUE_STRING, 0, 0},
    [KEY_TEMPERATURE] = {"temperature", VALUE_NUMBER, 0, 100},
    [KEY_TOP_K] = {"top_k", VALUE_INTEGER, 0, MAX_VOCAB},
    [KEY_TOP_P] = {"top_p", VALUE_NUMBER, 0, 1},
    [KEY_REPETITION_PENALTY] = {"repetition_penalty", VALUE_NUMBER, 0.01, 100},  // as --repeat-penalty
    [KEY_SEED] = {"seed", VALUE_INTEGER, 0, 9007199254740991.0},
    [KEY_MAX_NEW_TOKENS] = {"max_new_tokens", VALUE_INTEGER, -1, MAX_SEQ},
};

// What is wrong with a line, for its {"line": N, "error": "..."}.
#define BATCH_ERROR_SIZE 512

static const char *batch_error(char *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, BATCH_ERROR_SIZE, fmt, ap);
    va_end(ap);
    return err;
}

// JSON's whitespace (RFC 8259): space, tab, line feed, carriage return, nothing else.
static const char *json_space(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

// The JSON text of the key or value at p, for a message: a string with its quotes, an
// object or array as its bracket, else up to the next delimiter; at most 40 bytes, cut
// at a character boundary (EXCERPT bytes hold it).
#define EXCERPT 64

static void json_excerpt(const char *p, char *out, size_t size) {
    const char *q = p + strcspn(p, " \t\r\n,:}]");
    if (*p == '"') {
        for (q = p + 1; *q && *q != '"'; q++)
            if (*q == '\\' && q[1]) q++;  // an escaped quote does not end it
        if (*q == '"') q++;
    }
    size_t whole = (size_t)(q - p), len = whole < 40 ? whole : 40;
    if (*p == '{' || *p == '[') {  // its bracket, then "..."
        len = 1;
        whole = 2;
    }
    while (len < whole && len > 0 && ((unsigned char)p[len] & 0xC0) == 0x80) len--;
    snprintf(out, size, "%.*s%s", (int)len, p, len < whole ? "..." : "");
}

// Exactly four hex digits at p, as JSON's \uXXXX has them (no sign, spaces or 0x);
// stops at the end of the string.
static int hex4(const char *p, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!isxdigit(c)) return 0;
        *v = *v * 16 + (unsigned)(isdigit(c) ? c - '0' : tolower(c) - 'a' + 10);
    }
    return 1;
}

// The character of the \u escape at p (after the backslash), a surrogate pair as one;
// *len gets the escape's length. Returns -1 for a malformed or lone-surrogate escape.
static long json_unicode_escape(const char *p, int *len) {
    unsigned cp, lo;
    if (!hex4(p + 1, &cp)) return -1;
    *len = 5;
    if (cp >= 0xD800 && cp < 0xDC00 && p[5] == '\\' && p[6] == 'u' && hex4(p + 7, &lo) && lo >= 0xDC00 &&
        lo < 0xE000) {
        *len = 11;
        return 0x10000 + ((long)(cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    return cp >= 0xD800 && cp < 0xE000 ? -1 : (long)cp;
}

// Returns NULL with reason in *why: for the failures of the parsers below.
static const char *fail(const char **why, const char *reason) {
    *why = reason;
    return NULL;
}

// Reads the JSON string at p (at its opening quote) into out: escapes become the bytes
// they stand for, \uXXXX (and surrogate pairs) UTF-8. Returns the position after it, or
// NULL with what is wrong in *why. \u0000 is refused: a prompt is a C string here.
static const char *json_string(const char *p, Text *out, const char **why) {
    out->len = 0;
    text_append(out, "", 0);
    for (p++; *p != '"'; p++) {
        if (!*p) return fail(why, "no closing quote");
        if ((unsigned char)*p < 0x20) return fail(why, "a control character (write it as \\n, \\t or \\u00XX)");
        if (*p != '\\') {
            text_append(out, p, 1);
            continue;
        }
        const char *simple = strchr("\"\\/bfnrt", *++p);
        if (*p && simple) {
            text_append(out, &"\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"], 1);
            continue;
        }
        int len;
        long cp = *p == 'u' ? json_unicode_escape(p, &len) : -2;
        if (cp == -2) return fail(why, "an unknown escape (JSON has \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
        if (cp == -1) return fail(why, "a \\u escape that is not four hex digits or is a lone surrogate");
        if (cp == 0) return fail(why, "\\u0000, a NUL character, which a prompt cannot hold");
        char u[4];
        int bytes = utf8_encode_char((uint32_t)cp, u);
        text_append(out, u, (size_t)bytes);
        p += len - 1;
    }
    return p + 1;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

// Does a JSON value end at p: whitespace, then ',', '}', ']' or the end of the line?
static int json_value_ends(const char *p) {
    p = json_space(p);
    return !*p || *p == ',' || *p == '}' || *p == ']';
}

// The end of the JSON number at p, or NULL if there is none: RFC 8259's grammar
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, then the end of the value. So 0x10, +3,
// 0003, .5, 5., NaN and Infinity are not numbers.
static const char *json_number_end(const char *p) {
    if (*p == '-') p++;
    if (*p == '0') p++;
    else if (is_digit(*p)) while (is_digit(*p)) p++;
    else return NULL;
    if (*p == '.') {
        if (!is_digit(*++p)) return NULL;
        while (is_digit(*p)) p++;
    }
    if (*p == 'e' || *p == 'E') {
        p += p[1] == '+' || p[1] == '-' ? 2 : 1;
        if (!is_digit(*p)) return NULL;
        while (is_digit(*p)) p++;
    }
    return json_value_ends(p) ? p : NULL;
}

// Does a JSON value other than a number start at p (a string, object, array, true,
// false or null)? For the messages: such a value has the wrong type, anything else that
// is not a number is not JSON.
static int json_other_value(const char *p) {
    if (*p == '"' || *p == '{' || *p == '[') return 1;
    return (!strncmp(p, "true", 4) && json_value_ends(p + 4)) || (!strncmp(p, "null", 4) && json_value_ends(p + 4)) ||
           (!strncmp(p, "false", 5) && json_value_ends(p + 5));
}

// Reads the value of key k at p into item. Returns the position after it, or NULL with
// the reason in err, which names the key (key: its JSON text) and the value.
static const char *batch_value(const char *p, int k, const char *key, BatchItem *item, char *err) {
    char value[EXCERPT];
    json_excerpt(p, value, sizeof(value));
    err[0] = '\0';
    if (BATCH_KEYS[k].type == VALUE_STRING) {
        const char *why = NULL, *end = NULL;
        if (*p != '"') batch_error(err, "%s: expected a string in double quotes, got %s", key, value);
        else if (!(end = json_string(p, k == KEY_PROMPT ? &item->prompt : &item->system, &why)))
            batch_error(err, "%s: the string %s has %s", key, value, why);
        item->has_system |= k == KEY_SYSTEM;
        return end;
    }
    const char *end = json_number_end(p);
    double v = end ? strtod(p, NULL) : 0.0, lo = BATCH_KEYS[k].lo, hi = BATCH_KEYS[k].hi;
    if (!end && json_other_value(p)) batch_error(err, "%s: expected a number, got %s", key, value);
    else if (!end)
        batch_error(err, "%s: %s is not a JSON number (decimal digits, without a + sign, leading zeros, 0x "
                    "or a bare '.')", key, value);
    else if (BATCH_KEYS[k].type == VALUE_INTEGER && v != floor(v))
        batch_error(err, "%s: %s is not a whole number", key, value);
    else if (!(v >= lo && v <= hi)) batch_error(err, "%s: %s is out of range [%.17g, %.17g]", key, value, lo, hi);
    else if (k == KEY_TEMPERATURE) item->sampler.temperature = (float)v;
    else if (k == KEY_TOP_K) item->sampler.top_k = (int)v;
    else if (k == KEY_TOP_P) item->sampler.top_p = (float)v;
    else if (k == KEY_REPETITION_PENALTY) item->sampler.repetition_penalty = (float)v;
    else if (k == KEY_SEED) item->sampler.rng = (uint64_t)v;
    else item->max_new_tokens = (int)v;
    return err[0] ? NULL : end;
}

// The key at p (at its quote): its number in BATCH_KEYS, N_BATCH_KEYS if unknown, or -1
// with the reason in err. *end gets the position after it, key (EXCERPT bytes) its JSON text.
static int batch_key(const char *line, const char *p, const char **end, char *key, char *err) {
    json_excerpt(p, key, EXCERPT);
    if (*p != '"') {
        batch_error(err, "invalid JSON at column %d: expected a key in double quotes", (int)(p - line + 1));
        return -1;
    }
    Text name = {0};
    const char *why;
    *end = json_string(p, &name, &why);
    int k = 0;
    while (*end && k < N_BATCH_KEYS && strcmp(name.data, BATCH_KEYS[k].name)) k++;
    text_free(&name);
    if (*end) return k;
    batch_error(err, "the key %s has %s", key, why);
    return -1;
}

// The keys of a JSON line, for the message about an unknown one.
static void batch_key_list(char *out, size_t size) {
    out[0] = '\0';
    for (int k = 0; k < N_BATCH_KEYS; k++) {
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%s%s", k ? ", " : "", BATCH_KEYS[k].name);
    }
}

// A JSON object, strictly as RFC 8259 has it, whose keys are those of BATCH_KEYS, each
// at most once, with "prompt" among them. Returns NULL, or what is wrong.
static const char *parse_batch_object(const char *line, BatchItem *item, char *err) {
    const char *p = json_space(json_space(line) + 1);  // after the '{'
    unsigned seen = 0;  // bit k: key k was there
    while (*p != '}') {  // {} has no key; after a key, '}' ends the loop below
        char key[EXCERPT];
        int k = batch_key(line, p, &p, key, err);
        if (k < 0) return err;
        p = json_space(p);
        if (*p != ':')
            return batch_error(err, "invalid JSON at column %d: expected ':' after the key %s", (int)(p - line + 1), key);
        p = json_space(p + 1);
        if (k == N_BATCH_KEYS) {
            char value[EXCERPT], keys[128];
            json_excerpt(p, value, sizeof(value));
            batch_key_list(keys, sizeof(keys));
            return batch_error(err, "unknown key: %s: %s (the keys are %s)", key, value, keys);
        }
        if (seen & 1u << k) return batch_error(err, "the key %s appears twice", key);
        seen |= 1u << k;
        if (!(p = batch_value(p, k, key, item, err))) return err;
        p = json_space(p);
        if (*p == '}') break;
        if (*p != ',')
            return batch_error(err, "invalid JSON at column %d: expected ',' or '}' after the value of %s",
                               (int)(p - line + 1), key);
        p = json_space(p + 1);
        if (*p == '}') return batch_error(err, "invalid JSON at column %d: a comma before '}'", (int)(p - line + 1));
    }
    p = json_space(p + 1);
    if (*p) return batch_error(err, "invalid JSON at column %d: text after the object", (int)(p - line + 1));
    if (!(seen & 1u << KEY_PROMPT)) return batch_error(err, "no \"prompt\"");
    return NULL;
}

// Parses a batch line of len bytes into item (whose sampler and limits hold the
// defaults): a JSON object when its first character other than whitespace is '{', else
// a prompt as it is. Returns NULL, or what is wrong with the line (in err).
static const char *parse_batch_line(const char *line, size_t len, BatchItem *item, char *err) {
    if (memchr(line, '\0', len)) return batch_error(err, "the line holds a NUL byte");
    if (!utf8_is_valid(line, len)) return batch_error(err, "the line is not valid UTF-8");
    if (*json_space(line) == '{') return parse_batch_object(line, item, err);
    item->prompt.len = 0;
    text_puts(&item->prompt, line);
    return NULL;
}

// Generates the answer of batch line line_no (ids: its n prompt tokens) and prints its
// JSON object: the prompt, the answer, the statistics, the seed, with --top-logprobs the
// candidates of every sampled token, and "interrupted": true if Ctrl-C cut the answer
// short. Returns 1 if it did.
static int batch_answer(Session *ss, const BatchItem *item, const int *ids, int n, int line_no) {
    ss->sampler.cfg = item->sampler;
    if (ss->sampler.cfg.rng == 0) ss->sampler.cfg.rng = 0x9E3779B97F4A7C15ull;
    ss->max_new_tokens = item->max_new_tokens;
    int reused = session_reuse_prefix(ss, ids, n);
    Text answer = {0}, top = {0};
    text_append(&answer, "", 0);
    text_puts(&top, "[");
    ss->top_json = &top;
    session_generate(ss, ids + reused, n - reused, NULL, &answer);
    ss->top_json = NULL;
    int interrupted = stop_answer;  // on_interrupt cut the answer short
    const Stats *st = &ss->stats;
    printf("{\"line\": %d, \"prompt\": ", line_no);
    write_json_string(stdout, item->prompt.data, item->prompt.len);
    fputs(", \"answer\": ", stdout);
    write_json_string(stdout, answer.data, answer.len);
    printf(", \"prompt_tokens\": %d, \"reused_tokens\": %d, \"new_tokens\": %d, \"prefill_tok_s\": %.2f, "
           "\"gen_tok_s\": %.2f, \"ttft_ms\": %.2f, \"seed\": %llu", n, reused, st->new_tokens,
           rate(st->prompt_tokens, st->prefill_s), rate(st->new_tokens, st->gen_s), st->ttft_s * 1e3,
           (unsigned long long)item->sampler.rng);
    if (ss->top_logprobs > 0) printf(", \"top_logprobs\": %s]", top.data);
    if (interrupted) fputs(", \"interrupted\": true", stdout);
    puts("}");
    flush_or_exit(stdout);
    text_free(&answer);
    text_free(&top);
    return interrupted;
}

// The prompt tokens of a batch line (malloc'ed, *n of them), or NULL with the reason in err.
static int *batch_prompt(const Session *ss, const BatchItem *item, int chat_mode, const char *system,
                         const char *date, int *n, char *err) {
    const Model *m = ss->model;
    const char *sys = item->has_system ? item->system.data : system;
    int *ids = chat_mode ? encode_single_turn(m, sys, item->prompt.data, date, n)
                         : encode(m, item->prompt.data, m->gen.add_bos, n);
    const char *why = NULL;
    if (!ids) why = batch_error(err, "the prompt is too long to encode");
    else if (*n == 0) why = batch_error(err, "empty prompt");
    else if (*n > ss->state.seq_len)
        why = batch_error(err, "the prompt is %d tokens, longer than the context (%d; see -c)", *n, ss->state.seq_len);
    if (!why) return ids;
    free(ids);
    return NULL;
}

// --batch FILE: every line is a fresh one-turn conversation (chat mode) or a prompt to
// continue (generate mode); one JSON object per line on stdout with the answer and its
// statistics, or {"line": N, "error": "..."} for a line that cannot be used. A system
// prompt shared by the lines is computed once (the cache is reused). Ctrl-C during an
// answer prints its line marked "interrupted" and ends the run (exit code 130).
static void batch(Session *ss, const char *path, int chat_mode, const char *system, SamplerConfig defaults) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    struct stat st;
    if (!f) fatal("cannot open %s: %s", path, strerror(errno));
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) fatal("%s is a folder: --batch reads a file, one prompt per line", path);
    char date[32], err[BATCH_ERROR_SIZE];
    today(date, sizeof(date));
    int default_max = ss->max_new_tokens;
    Text line = {0};
    BatchItem item = {0};
    for (int line_no = 1; read_line(&line, f); line_no++) {
        size_t skip = line_no == 1 && !strncmp(line.data, "\xEF\xBB\xBF", 3) ? 3 : 0;  // a byte-order mark
        if (line.len == skip) continue;
        item.has_system = 0;
        item.sampler = defaults;
        item.max_new_tokens = default_max;
        int n = 0, *ids = NULL;
        const char *why = parse_batch_line(line.data + skip, line.len - skip, &item, err);
        if (!why && !(ids = batch_prompt(ss, &item, chat_mode, system, date, &n, err))) why = err;
        if (why) {
            printf("{\"line\": %d, \"error\": ", line_no);
            write_json_string(stdout, why, strlen(why));
            puts("}");
            flush_or_exit(stdout);
            continue;
        }
        int interrupted = batch_answer(ss, &item, ids, n, line_no);
        free(ids);
        if (interrupted) {
            fprintf(stderr, "[interrupted at line %d: the lines before it are complete]\n", line_no);
            exit(130);  // as a Ctrl-C outside an answer ends the program (on_interrupt)
        }
    }
    if (ferror(f)) fatal("cannot read %s: %s", path, strerror(errno));
    if (f != stdin) fclose(f);
    text_free(&line);
    text_free(&item.prompt); text_free(&item.system);
}

// ----------------------------------------------------------------------------
// Inspection: what the model file holds and how text becomes tokens

// --info: one line per tensor (those of every layer once, with their count).
static uint64_t info_tensor(const char *name, int count, int rows, int cols, const Matrix *W) {
    uint64_t n = (uint64_t)rows * (uint64_t)cols;
    uint64_t bytes = W && W->q ? n + n / (uint64_t)W->group_size * 4 : n * 4;
    char shape[64];
    if (rows > 1) snprintf(shape, sizeof(shape), "(%d, %d)", rows, cols);
    else snprintf(shape, sizeof(shape), "(%d)", cols);
    printf("  %-28s %-14s %-5s %12llu bytes%s\n", name, shape, W && W->q ? "q8_0" : "f32",
           (unsigned long long)bytes, count > 1 ? " each" : "");
    return n * (uint64_t)count;
}

static void print_tensors(const Model *m) {
    const Config *c = &m->config;
    const LayerWeights *l = &m->weights.layers[0];
    int L = c->n_layers, q_dim = c->n_heads * c->head_dim, kv_dim = c->n_kv_heads * c->head_dim;
    char layer[32];
    snprintf(layer, sizeof(layer), "layers[0..%d].", L - 1);
    const char *names[] = {"attn_norm", "wq", "wk", "wv", "bq", "bk", "bv", "wo", "ffn_norm", "w_gate", "w_up", "w_down"};
    const Matrix *mats[] = {NULL, &l->wq, &l->wk, &l->wv, NULL, NULL, NULL, &l->wo, NULL, &l->w_gate, &l->w_up, &l->w_down};
    int rows[] = {1, q_dim, kv_dim, kv_dim, 1, 1, 1, c->dim, 1, c->hidden_dim, c->hidden_dim, c->dim};
    int cols[] = {c->dim, c->dim, c->dim, c->dim, q_dim, kv_dim, kv_dim, q_dim, c->dim, c->dim, c->dim, c->hidden_dim};
    printf("tensors:\n");
    uint64_t params = info_tensor("token_embedding", 1, c->vocab_size, c->dim, &m->weights.token_embedding);
    for (int i = 0; i < 12; i++) {
        if (i >= 4 && i <= 6 && !c->qkv_bias) continue;
        char name[64];
        snprintf(name, sizeof(name), "%s%s", layer, names[i]);
        params += info_tensor(name, L, rows[i], cols[i], mats[i]);
    }
    params += info_tensor("final_norm", 1, 1, c->dim, NULL);
    if (!c->tied_embeddings) params += info_tensor("classifier", 1, c->vocab_size, c->dim, &m->weights.classifier);
    else printf("  %-28s the token embedding (tied)\n", "classifier");
    printf("parameters: %llu (%.1f M); file: %zu bytes\n", (unsigned long long)params, (double)params / 1e6, m->size);
}

// --info: what the model file says, for a learner (and for a bug report).
static void print_info(const Model *m) {
    const Config *c = &m->config;
    const GenConfig *g = &m->gen;
    static const char *pretok[] = {"none", "SmolLM2/GPT-2", "Llama 3", "Qwen2"};
    static const char *chat_format[] = {"none", "ChatML", "Llama 3"};
    printf("model: %s\n", m->path);
    printf("dim %d, hidden_dim %d, n_layers %d, n_heads %d, n_kv_heads %d, head_dim %d, vocab_size %d, "
           "max_seq_len %d\n", c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
           c->vocab_size, c->max_seq_len);
    printf("rope_theta %g, norm_eps %g, qkv_bias %d, tied_embeddings %d\n", c->rope_theta, c->norm_eps,
           c->qkv_bias, c->tied_embeddings);
    if (c->rope_type == ROPE_LLAMA3)
        printf("rope scaling llama3: factor %g, low_freq_factor %g, high_freq_factor %g, original_max_pos %d\n",
               c->rope_factor, c->rope_low_freq_factor, c->rope_high_freq_factor, c->rope_original_max_pos);
    if (c->weight_type == WEIGHT_Q8_0) printf("weights: q8_0, groups of %d\n", c->group_size);
    else printf("weights: f32\n");
    print_tensors(m);
    const Tokenizer *t = &m->tokenizer;
    printf("tokenizer: %s, pre-tokenizer %s, normalizer %s, %d merges, bos %d (%s)\n",
           t->spec.type == TOKENIZER_SENTENCEPIECE ? "SentencePiece BPE" : "byte-level BPE",
           pretok[t->spec.pretokenizer], t->spec.normalizer == NORM_NFC ? "NFC" : "none", t->spec.n_merges,
           g->bos_id, g->add_bos ? "added to prompts" : "not added");
    printf("chat format: %s; end of turn %d; stop ids", chat_format[g->chat_template], g->eot_id);
    for (int i = 0; i < g->n_stop; i++) printf(" %d", g->stop_ids[i]);
    printf("\ndefault system prompt: ");
    write_json_string(stdout, g->default_system, (size_t)g->default_system_len);
    if (g->default_temperature > 0)
        printf("\nsampling defaults: temperature %g, top_k %d, top_p %g", g->default_temperature, g->default_top_k,
               g->default_top_p);
    else printf("\nsampling defaults: greedy");
    printf(", repetition_penalty %g\n", g->default_repetition_penalty);
}

// -m tokenize: the ids of the prompt, on one line, or with --pieces one token a line:
// its id and its text as a JSON string (spaces, newlines and partial characters visible).
static void run_tokenize(const Model *m, const char *prompt, int pieces) {
    int n;
    int *ids = encode(m, prompt ? prompt : "", 0, &n);
    if (!ids) fatal("the prompt is not valid UTF-8");
    for (int i = 0; i < n; i++) {
        if (pieces) {
            size_t len;
            const char *piece = tokenizer_decode(&m->tokenizer, i ? ids[i - 1] : -1, ids[i], &len);
            printf("%d\t", ids[i]);
            write_json_string(stdout, piece, len);
            putchar('\n');
        } else {
            printf(i ? " %d" : "%d", ids[i]);
        }
    }
    if (!pieces) putchar('\n');
    free(ids);
}

// The n most likely tokens of the distribution sample() draws from, with their
// probabilities renormalised over the tokens kept, into top[0..n), most likely first
// (greedy decoding: the model's own distribution, softmax(logits)). Returns how many.
static int sampler_top(Sampler *sm, const float *logits, ProbIndex *top, int n) {
    const SamplerConfig *cfg = &sm->cfg;
    int greedy = cfg->temperature < GREEDY_BELOW_TEMPERATURE;
    int keep = greedy ? sampler_distribution(sm, logits, 1.0f, 0, 1.0f)
                      : sampler_distribution(sm, logits, cfg->temperature, cfg->top_k, cfg->top_p);
    float total = 0.0f;
    for (int i = 0; i < keep; i++) total += sm->candidates[i].prob;
    int count = 0;  // insertion into top[0..count), which stays sorted: n is small
    for (int i = 0; i < keep; i++) {
        ProbIndex c = sm->candidates[i];
        if (count == n && compare_prob_desc(&c, &top[n - 1]) >= 0) continue;
        int j = count < n ? count++ : n - 1;
        for (; j > 0 && compare_prob_desc(&c, &top[j - 1]) < 0; j--) top[j] = top[j - 1];
        top[j] = c;
    }
    for (int r = 0; r < count; r++) top[r].prob /= total;
    return count;
}

// --top-logprobs: the most likely candidates for the token after prev, with their
// probabilities as the sampler sees them, as one line on stderr or as a JSON array.
static void report_top(Session *ss, const float *logits, int prev) {
    ProbIndex top[MAX_TOP_LOGPROBS];
    int k = sampler_top(&ss->sampler, logits, top, ss->top_logprobs);
    Text line = {0}, *t = ss->top_json ? ss->top_json : &line;
    char num[64];
    if (ss->top_json) text_puts(t, t->len > 1 ? ", [" : "[");  // one array per token
    else text_puts(t, "  candidates:");
    for (int i = 0; i < k; i++) {
        size_t len;
        const char *piece = tokenizer_decode(&ss->model->tokenizer, prev, top[i].id, &len);
        if (ss->top_json) {
            text_puts(t, i ? ", {\"token\": " : "{\"token\": ");
            text_append_json(t, piece, len);
            snprintf(num, sizeof(num), ", \"id\": %d, \"logprob\": %.6f}", top[i].id, log(top[i].prob));
        } else {
            text_puts(t, "  ");
            text_append_json(t, piece, len);
            snprintf(num, sizeof(num), " %.4f", top[i].prob);
        }
        text_puts(t, num);
    }
    if (ss->top_json) text_puts(t, "]");
    else fprintf(stderr, "%s\n", line.data);
    text_free(&line);
}

// --version: what was built, and how.
#ifndef BUILD_FLAGS
#define BUILD_FLAGS "(not recorded)"
#endif

static void print_version(void) {
#if defined(__clang__)
    const char *compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
    const char *compiler = "gcc " __VERSION__;
#else
    const char *compiler = "unknown";
#endif
    printf("run.c, model file format 1\ncompiler: %s\nflags: %s\n", compiler, BUILD_FLAGS);
#ifdef _OPENMP
    printf("OpenMP: on, %d threads\n", omp_get_max_threads());
#else
    printf("OpenMP: off (one thread)\n");
#endif
#ifdef REFERENCE
    printf("kernels: the plain reference loops (make reference)\n");
#else
    printf("kernels: the fast ones (section 7)\n");
#endif
}

// --help: every option of every mode.
static void usage(FILE *f) {
    fputs("Usage: run MODEL.bin [options]\n"
          "  -m, --mode MODE           generate | chat | tokenize | perplexity | classify\n"
          "                            (default: chat if the model has a chat template)\n"
          "  -i, --prompt TEXT         the prompt (chat: the first user turn; further turns\n"
          "                            are read from stdin, one per line; perplexity and\n"
          "                            classify: a file)\n"
          "                            chat: /clear starts anew, /bye or end of input ends;\n"
          "                            Ctrl-C stops an answer, a second one exits (130)\n"
          "  -y, --system TEXT         chat: the system prompt (default: the model's own)\n"
          "  -t, --temperature T       0 = greedy (default: the model's generation_config)\n"
          "  -p, --top-p P             keep the most likely tokens up to probability P (1 = off)\n"
          "  -k, --top-k K             keep the K most likely tokens (0 = off)\n"
          "      --repeat-penalty P    divide the logits of the tokens already in the text\n"
          "                            by P (transformers' repetition_penalty; 1 = off;\n"
          "                            default: the model's generation_config)\n"
          "  -s, --seed N              random seed (default: the time)\n"
          "  -n, --max-new-tokens N    new tokens per answer (default 256; -1 = no limit)\n"
          "  -c, --context N           KV cache length (default: min(model max, 2048))\n"
          "      --threads N           threads (default: OpenMP's, all cores; -t is the\n"
          "                            temperature, as in llama2.c)\n"
          "      --ignore-eos          do not stop at end-of-sequence/end-of-turn tokens\n"
          "      --top-logprobs N      show the N most likely candidates of every token, with\n"
          "                            their probabilities after -t, -k and -p (stderr)\n"
          "      --dump-logits FILE    write the float32 logits of every processed position\n"
          "      --stats text|json|off statistics after each answer on stderr (default text)\n"
          "      --info                the model's hyperparameters, tensors, tokenizer, ...\n"
          "      --pieces              tokenize: each token's id and text, one per line\n"
          "      --verify              check the weights' checksum, then exit\n"
          "  Evaluation:\n"
          "  -m classify -i FILE.tsv   classify each row (header, then text<TAB>label) and\n"
          "                            print a classification report\n"
          "      --labels A,B,C        the classes (default: the labels in the file)\n"
          "      --template TEXT       the user message; {text} is the row's text (default {text})\n"
          "      --free                generate the answer (greedy, -n tokens) and match it to a\n"
          "                            label, instead of scoring the labels\n"
          "      --output FILE         the per-row lines go to FILE instead of stdout\n"
          "  -m perplexity -i FILE     per-token log-probabilities, mean NLL, perplexity\n"
          "      --batch FILE          one prompt per line, or JSON (prompt, system, temperature,\n"
          "                            top_k, top_p, repetition_penalty, seed, max_new_tokens)\n"
          "  -h, --help                this help;  --version  the build\n", f);
}

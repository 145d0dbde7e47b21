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

// log p(id) under the softmax of the logits, computed in double: log_softmax(x)_id =
// x_id - max - log(sum_j exp(x_j - max)).
static double log_prob(const float *logits, int n, int id) {
    float max = logits[argmax(logits, n)];
    double sum = 0.0;
    for (int j = 0; j < n; j++) sum += exp((double)logits[j] - max);
    return (double)logits[id] - max - log(sum);
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
    }
    int predicted = n - 1;
    fprintf(out, "tokens %d, predicted %d, mean NLL %.6f, perplexity %.6f\n", n, predicted,
            predicted > 0 ? nll / predicted : 0.0, predicted > 0 ? exp(nll / predicted) : 1.0);
}

// -m perplexity -i FILE: the text of FILE scored by the model.
static void run_perplexity(Session *ss, const char *path) {
    char *text = read_file(path);
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
    char **all = xcalloc(2 * (size_t)n, sizeof(char *));
    memcpy(all, a, (size_t)n * sizeof(char *));
    memcpy(all + n, b, (size_t)n * sizeof(char *));
    qsort(all, 2 * (size_t)n, sizeof(char *), compare_strings);
    int k = 0;
    for (int i = 0; i < 2 * n; i++)
        if (k == 0 || strcmp(all[k - 1], all[i])) all[k++] = all[i];
    *n_out = k;
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

// scikit-learn's classification_report(gold, pred, zero_division=0), to the character:
// per class precision = tp / predicted, recall = tp / support, f1 = 2pr / (p + r)
// (0 where a denominator is 0); accuracy; the unweighted mean over classes (macro
// avg) and the mean weighted by support (weighted avg). Then the confusion matrix
// (rows: gold, columns: predicted).
static void classification_report(FILE *f, char **gold, char **pred, int n) {
    int k;
    char **classes = distinct_labels(gold, pred, n, &k);
    int *confusion = xcalloc((size_t)k * (size_t)k, sizeof(int));
    for (int i = 0; i < n; i++) {
        int g = 0, p = 0;
        while (strcmp(classes[g], gold[i])) g++;
        while (strcmp(classes[p], pred[i])) p++;
        confusion[g * k + p]++;
    }
    int correct = 0;
    for (int c = 0; c < k; c++) correct += confusion[c * k + c];
    // sklearn's quirk: with no correct prediction at all its supports are floats ("16.0")
    const char *support_fmt = correct ? " %9.0f\n" : " %9.1f\n";
    int width = 12;  // strlen("weighted avg")
    for (int c = 0; c < k; c++)
        if (utf8_chars(classes[c]) > width) width = utf8_chars(classes[c]);
    fprintf(f, "%*s  %9s %9s %9s %9s\n\n", width, "", "precision", "recall", "f1-score", "support");
    double *v = xcalloc(6 * (size_t)k, sizeof(double));  // precision, recall, f1; then * support
    for (int c = 0; c < k; c++) {
        int tp = confusion[c * k + c], support = 0, predicted = 0;
        for (int j = 0; j < k; j++) support += confusion[c * k + j], predicted += confusion[j * k + c];
        double precision = predicted ? (double)tp / predicted : 0.0;
        double recall = support ? (double)tp / support : 0.0;
        double f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
        v[c] = precision, v[k + c] = recall, v[2 * k + c] = f1;
        for (int j = 0; j < 3; j++) v[(3 + j) * k + c] = v[j * k + c] * support;
        put_right(f, classes[c], width);
        fprintf(f, "  %9.2f %9.2f %9.2f", precision, recall, f1);
        fprintf(f, support_fmt, (double)support);
    }
    double a = (double)correct / n;  // sklearn 1.2 computes it as the f1 of the micro average
    fprintf(f, "\n%*s  %9s %9s %9.2f", width, "accuracy", "", "", a > 0 ? 2 * a * a / (a + a) : 0.0);
    fprintf(f, support_fmt, (double)n);
    fprintf(f, "%*s ", width, "macro avg");
    for (int j = 0; j < 3; j++) fprintf(f, " %9.2f", numpy_sum(v + j * k, k) / k);
    fprintf(f, support_fmt, (double)n);
    fprintf(f, "%*s ", width, "weighted avg");
    for (int j = 0; j < 3; j++) fprintf(f, " %9.2f", numpy_sum(v + (3 + j) * k, k) / n);
    fprintf(f, support_fmt, (double)n);
    free(v);

    fprintf(f, "\nconfusion matrix (rows: gold, columns: predicted)\n%*s", width, "");
    for (int c = 0; c < k; c++) fputc(' ', f), put_right(f, classes[c], utf8_chars(classes[c]) > 6 ? utf8_chars(classes[c]) : 6);
    fputc('\n', f);
    for (int g = 0; g < k; g++) {
        put_right(f, classes[g], width);
        for (int c = 0; c < k; c++)
            fprintf(f, " %*d", utf8_chars(classes[c]) > 6 ? utf8_chars(classes[c]) : 6, confusion[g * k + c]);
        fputc('\n', f);
    }
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

// The rows of a TSV file (a header line, then text<TAB>label), cut in place in data:
// texts[i] and gold[i] point into it. Returns the number of rows.
static int read_rows(char *data, const char *path, char ***texts, char ***gold) {
    int n = 0, cap = 0, line_no = 0;
    for (char *line = data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        line[strcspn(line, "\r")] = '\0';
        if (line_no++ == 0 || !*line) continue;  // the header, blank lines
        char *tab = strrchr(line, '\t');
        if (!tab) fatal("%s:%d: expected text<TAB>label", path, line_no);
        *tab = '\0';
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

// --labels, else the distinct gold labels in the order they appear.
static void labels_build(Labels *lb, const Model *m, const char *list, char **gold, int n) {
    lb->buffer = xcalloc(strlen(list ? list : "") + 1, 1);
    strcpy(lb->buffer, list ? list : "");
    lb->names = xcalloc((size_t)n + strlen(lb->buffer) + 1, sizeof(char *));
    lb->n = 0;
    if (list) {
        for (char *l = strtok(lb->buffer, ","); l; l = strtok(NULL, ",")) lb->names[lb->n++] = l;
    } else {
        for (int i = 0; i < n; i++) {
            int seen = 0;
            for (int j = 0; j < lb->n && !seen; j++) seen = !strcmp(lb->names[j], gold[i]);
            if (!seen) lb->names[lb->n++] = gold[i];
        }
    }
    if (lb->n < 2) fatal("classification needs at least two labels (--labels a,b,c)");
    lb->ids = xcalloc((size_t)lb->n, sizeof(int *));
    lb->len = xcalloc((size_t)lb->n, sizeof(int));
    lb->longest = 0;
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

// --free: a greedy answer into answer, matched to a label (see normalise_label);
// "invalid" if it matches none.
static const char *classify_free(Session *ss, const Labels *lb, const int *ids, int n_prompt, Text *answer) {
    Text norm = {0}, norm_label = {0};
    answer->len = 0;
    text_append(answer, "", 0);
    session_generate(ss, ids + ss->pos, n_prompt - ss->pos, NULL, answer);
    normalise_label(&norm, answer->data, answer->len);
    const char *pred = "invalid";
    for (int l = 0; l < lb->n; l++) {
        normalise_label(&norm_label, lb->names[l], strlen(lb->names[l]));
        if (!strcmp(norm.data, norm_label.data)) pred = lb->names[l];
    }
    text_free(&norm);
    text_free(&norm_label);
    return pred;
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

// -m classify -i FILE.tsv: classifies every row of a TSV file (a header line, then
// text<TAB>label) with the prompt, prints one line per row (predicted label, gold label,
// then the probabilities of the labels, or the raw answer with --free) and a report.
// The KV cache of the prompt's shared head (system prompt, template) is reused from
// row to row.
static void classify(Session *ss, const char *path, const ClassifyOptions *co, FILE *rows_out) {
    const Model *m = ss->model;
    char *data = read_file(path), **texts = NULL, **gold = NULL;
    int n = read_rows(data, path, &texts, &gold);
    Labels lb;
    labels_build(&lb, m, co->labels, gold, n);
    char date[32];
    today(date, sizeof(date));
    char **pred = xcalloc((size_t)n, sizeof(char *));
    double *prob = xcalloc((size_t)lb.n, sizeof(double));
    Text user = {0}, answer = {0};
    double t0 = now_seconds();
    int reused = 0, processed = 0;
    for (int i = 0; i < n; i++) {
        fill_template(&user, co->template_, texts[i]);
        int n_prompt;
        int *ids = encode_single_turn(m, co->system, user.data, date, &n_prompt);
        if (!ids) fatal("%s: row %d is not valid UTF-8", path, i + 1);
        int need = n_prompt + (co->free_answer ? (co->max_new_tokens > 0 ? co->max_new_tokens : 1) : lb.longest);
        if (need > ss->state.seq_len)
            fatal("%s: row %d needs %d tokens, more than the context (%d; see -c)", path, i + 1, need, ss->state.seq_len);
        reused += session_reuse_prefix(ss, ids, n_prompt);
        processed += n_prompt;
        if (co->free_answer) {
            pred[i] = (char *)classify_free(ss, &lb, ids, n_prompt, &answer);
            fprintf(rows_out, "%s\t%s\t", pred[i], gold[i]);
            write_escaped(rows_out, answer.data, answer.len);
        } else {
            pred[i] = lb.names[classify_scored(ss, &lb, ids, n_prompt, prob)];
            fprintf(rows_out, "%s\t%s", pred[i], gold[i]);
            for (int l = 0; l < lb.n; l++) fprintf(rows_out, "\t%s=%.4f", lb.names[l], prob[l]);
        }
        fputc('\n', rows_out);
        fflush(rows_out);
        free(ids);
    }
    fprintf(stderr, "[%d rows in %.1f s; %d of %d prompt tokens reused from the cache]\n", n,
            now_seconds() - t0, reused, processed);
    printf("\n");
    classification_report(stdout, gold, pred, n);
    text_free(&user);
    text_free(&answer);
    labels_free(&lb);
    free(prob); free(pred); free(texts); free(gold); free(data);
}

// -m classify -i FILE.tsv, its rows to stdout or to the file output.
static void run_classify(Session *ss, const char *path, const ClassifyOptions *co, const char *output) {
    if (!path) fatal("-m classify needs -i FILE.tsv (a header line, then text<TAB>label lines)");
    ss->sampler.cfg.temperature = 0.0f;  // free answers are greedy, as the notebook's
    FILE *rows = output ? fopen(output, "wb") : stdout;
    if (!rows) fatal("cannot write %s: %s", output, strerror(errno));
    classify(ss, path, co, rows);
    if (rows != stdout && fclose(rows) != 0) fatal("cannot write %s", output);
}

// One line of a batch file: a plain prompt, or a flat JSON object.
typedef struct {
    Text prompt, system;
    int has_system;
    SamplerConfig sampler;
    int max_new_tokens;
} BatchItem;

// Exactly four hex digits at p, as JSON's \\uXXXX has them (no sign, spaces or 0x);
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

// Reads a JSON string at p (at its opening quote) into out; returns the position after
// it, or NULL if it is malformed. \uXXXX escapes (and surrogate pairs) become UTF-8.
static const char *json_string(const char *p, Text *out) {
    out->len = 0;
    text_append(out, "", 0);
    if (*p++ != '"') return NULL;
    while (*p && *p != '"') {
        if (*p != '\\') { text_append(out, p++, 1); continue; }
        p++;
        const char *simple = strchr("\"\\/bfnrt", *p);
        if (*p && simple) {
            text_append(out, &"\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"], 1);
            p++;
            continue;
        }
        if (*p != 'u') return NULL;
        unsigned cp, lo;
        if (!hex4(p + 1, &cp)) return NULL;
        p += 5;
        if (cp >= 0xD800 && cp < 0xDC00 && p[0] == '\\' && p[1] == 'u' && hex4(p + 2, &lo) &&
            lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        }
        if (cp >= 0xD800 && cp < 0xE000) return NULL;  // a lone surrogate
        char u[4];
        int n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (n == 1) u[0] = (char)cp;
        else {
            for (int i = n - 1; i > 0; i--, cp >>= 6) u[i] = (char)(0x80 | (cp & 0x3F));
            u[0] = (char)((0xF00 >> n) | cp);
        }
        text_append(out, u, (size_t)n);
    }
    return *p == '"' ? p + 1 : NULL;
}

// Parses a batch line into item (whose sampler and limits hold the defaults).
// Returns NULL, or a message saying what is wrong.
static const char *parse_batch_line(const char *line, BatchItem *item) {
    if (line[0] != '{') {
        item->prompt.len = 0;
        text_puts(&item->prompt, line);
        return NULL;
    }
    const char *p = line + 1;
    Text key = {0};
    const char *err = NULL;
    int has_prompt = 0;
    while (!err) {
        while (isspace((unsigned char)*p)) p++;
        if (*p == '}') break;
        if (!(p = json_string(p, &key))) { err = "malformed JSON key"; break; }
        while (isspace((unsigned char)*p)) p++;
        if (*p++ != ':') { err = "expected ':' in JSON"; break; }
        while (isspace((unsigned char)*p)) p++;
        if (!strcmp(key.data, "prompt") || !strcmp(key.data, "system")) {
            int is_prompt = !strcmp(key.data, "prompt");
            if (!(p = json_string(p, is_prompt ? &item->prompt : &item->system))) { err = "malformed JSON string"; break; }
            has_prompt |= is_prompt;
            item->has_system |= !is_prompt;
        } else {
            char *end;
            double v = strtod(p, &end);
            if (end == p) { err = "expected a number"; break; }
            p = end;
            if (!strcmp(key.data, "temperature") && v >= 0 && v <= 100) item->sampler.temperature = (float)v;
            else if (!strcmp(key.data, "top_p") && v >= 0 && v <= 1) item->sampler.top_p = (float)v;
            else if (!strcmp(key.data, "top_k") && v >= 0 && v <= MAX_VOCAB) item->sampler.top_k = (int)v;
            else if (!strcmp(key.data, "seed") && v >= 0 && v <= 9007199254740992.0) item->sampler.rng = (uint64_t)v;
            else if (!strcmp(key.data, "max_new_tokens") && v >= -1 && v <= MAX_SEQ) item->max_new_tokens = (int)v;
            else { err = "unknown key or value out of range (prompt, system, temperature, top_k, top_p, seed, max_new_tokens)"; break; }
        }
        while (isspace((unsigned char)*p)) p++;
        if (*p == ',') p++;
        else if (*p != '}') err = "expected ',' or '}' in JSON";
    }
    text_free(&key);
    if (!err && *p == '}') {
        for (p++; isspace((unsigned char)*p); p++) {}
        if (*p) err = "text after the JSON object";
    }
    if (!err && !has_prompt) err = "no \"prompt\"";
    return err;
}

// Generates the answer of one batch line (ids: its n prompt tokens) and prints the
// rest of its JSON object: the prompt, the answer, the statistics, and with
// --top-logprobs the candidates of every sampled token.
static void batch_answer(Session *ss, const BatchItem *item, const int *ids, int n) {
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
    const Stats *st = &ss->stats;
    fputs("\"prompt\": ", stdout);
    write_json_string(stdout, item->prompt.data, item->prompt.len);
    fputs(", \"answer\": ", stdout);
    write_json_string(stdout, answer.data, answer.len);
    printf(", \"prompt_tokens\": %d, \"reused_tokens\": %d, \"new_tokens\": %d, \"prefill_tok_s\": %.2f, "
           "\"gen_tok_s\": %.2f, \"ttft_ms\": %.2f", n, reused, st->new_tokens,
           rate(st->prompt_tokens, st->prefill_s), rate(st->new_tokens, st->gen_s), st->ttft_s * 1e3);
    if (ss->top_logprobs > 0) printf(", \"top_logprobs\": %s]", top.data);
    puts("}");
    text_free(&answer);
    text_free(&top);
}

// --batch FILE: every line is a fresh one-turn conversation (chat mode) or a prompt to
// continue (generate mode); one JSON object per line on stdout with the answer and its
// statistics. A system prompt shared by the lines is computed once (the cache is reused).
static void batch(Session *ss, const char *path, int chat_mode, const char *system, SamplerConfig defaults) {
    const Model *m = ss->model;
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) fatal("cannot open %s: %s", path, strerror(errno));
    char date[32];
    today(date, sizeof(date));
    int default_max = ss->max_new_tokens;
    Text line = {0};
    BatchItem item = {0};
    for (int line_no = 1; read_line(&line, f); line_no++) {
        if (line.len == 0) continue;
        item.has_system = 0;
        item.sampler = defaults;
        item.max_new_tokens = default_max;
        const char *err = parse_batch_line(line.data, &item);
        int n = 0, *ids = NULL;
        if (!err) {
            const char *sys = item.has_system ? item.system.data : system;
            ids = chat_mode ? encode_single_turn(m, sys, item.prompt.data, date, &n)
                            : encode(m, item.prompt.data, m->gen.add_bos, &n);
            if (!ids) err = "not valid UTF-8";
            else if (n == 0) err = "empty prompt";
            else if (n > ss->state.seq_len) err = "the prompt is longer than the context (see -c)";
        }
        printf("{\"line\": %d, ", line_no);
        if (err) {
            fputs("\"error\": ", stdout);
            write_json_string(stdout, err, strlen(err));
            puts("}");
            free(ids);
            continue;
        }
        batch_answer(ss, &item, ids, n);
        flush_or_exit(stdout);
        free(ids);
    }
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
    printf("  %-22s %-14s %-5s %12llu bytes%s\n", name, shape, W && W->q ? "q8_0" : "f32",
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
    else printf("  %-22s the token embedding (tied)\n", "classifier");
    printf("parameters: %llu (%.1f M); file: %zu bytes\n", (unsigned long long)params, (double)params / 1e6, m->size);
}

// --info: what the model file says, for a learner (and for a bug report).
static void print_info(const Model *m) {
    const Config *c = &m->config;
    const GenConfig *g = &m->gen;
    static const char *pretok[] = {"none", "SmolLM2/GPT-2", "Llama 3", "Qwen2"};
    static const char *chat[] = {"none", "ChatML", "Llama 3"};
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
    printf("chat format: %s; end of turn %d; stop ids", chat[g->chat_template], g->eot_id);
    for (int i = 0; i < g->n_stop; i++) printf(" %d", g->stop_ids[i]);
    printf("\ndefault system prompt: ");
    write_json_string(stdout, g->default_system, (size_t)g->default_system_len);
    if (g->default_temperature > 0)
        printf("\nsampling defaults: temperature %g, top_k %d, top_p %g\n", g->default_temperature, g->default_top_k,
               g->default_top_p);
    else printf("\nsampling defaults: greedy\n");
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
    int greedy = cfg->temperature <= 0.0f;
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

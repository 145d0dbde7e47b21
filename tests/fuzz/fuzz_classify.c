// fuzz_classify.c: libFuzzer target: what -m classify does before and after the model
// runs: the TSV reader (read_rows), the labels (labels_build: --labels or the file's),
// each row's prompt (check_rows: the --template filled in, rendered as a chat turn,
// encoded, not empty), the matching of a free answer to a label (match_label) and the
// report (classification_report). The model's part (scoring, generating) is left out:
// it is the forward pass, which fuzz_load and the golden tests cover.
//
// Input: byte 0 holds flags: bit 0 --labels is given, bit 1 --template is given, bit 2
// a system prompt (-y) is given, bits 3-4 the model (SmolLM2's ChatML, Llama 3 without
// a template, Qwen2's ChatML, SentencePiece without one; tests/fuzz/make_models.py),
// bit 5 the predictions are labels picked by the text's length (as scoring picks one)
// instead of the text matched as a free answer. Then, NUL-terminated, the --labels, the
// template and the system prompt that the flags say are given; the rest is the file.
//
// Checked against independent reimplementations of the documented rules:
//   - the file is refused exactly when it has a NUL byte, a CR that does not end a line
//     (CR LF does), a row without a tab or with an empty label (after the last tab), or
//     no rows (the first line is the header; blank lines are skipped); else the rows'
//     texts and labels are exactly the reference's;
//   - the labels are refused exactly when --labels has an empty or a repeated label or
//     more than 1000, the file more than 1000 distinct labels, there are fewer than 2,
//     or a gold label is not one of --labels (or a label is no UTF-8 / no token);
//     else they are the --labels in order, or the file's in order of appearance;
//   - the first rows' user messages are the template with every {text} replaced, and a
//     row is refused exactly when that or the system prompt is not UTF-8, or when the
//     prompt has no token at all;
//   - a free answer is predicted as the last label equal to it once white space and
//     ASCII punctuation around both are removed and case is ignored, else "invalid";
//   - the report is scikit-learn's classification_report layout: per class precision,
//     recall, f1 and support, accuracy, the averages (to 0.01: the reference sums
//     plainly, run.c as numpy does) and the confusion matrix up to 100 classes.
// A fatal() longjmps back here (FUZZING); what was allocated is freed, so
// LeakSanitizer checks the error paths too.

#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    load_models();
    return 0;
}

enum { PROMPT_ROWS = 16, MAX_USER_BYTES = 1 << 18 };
static const char *const path = "fuzz.tsv";

// ----------------------------------------------------------------------------
// The reference rules

typedef struct {
    const char *text, *gold;
    size_t text_len, gold_len;
} RefRow;

// The rows of the file s[0..n), or -1 if it must be refused. *rows is malloc'ed.
static int ref_rows(const char *s, size_t n, RefRow **rows) {
    *rows = NULL;
    if (memchr(s, '\0', n)) return -1;
    int count = 0, line_no = 0;
    for (size_t start = 0; start < n;) {
        const char *nl = memchr(s + start, '\n', n - start);
        size_t end = nl ? (size_t)(nl - s) : n, len = end - start;
        const char *line = s + start;
        start = end + 1;
        if (len > 0 && line[len - 1] == '\r') len--;
        if (memchr(line, '\r', len)) return -1;
        if (++line_no == 1 || len == 0) continue;
        size_t tab = len;
        while (tab > 0 && line[tab - 1] != '\t') tab--;
        if (tab == 0 || tab == len) return -1;   // no tab, or nothing after the last one
        *rows = realloc(*rows, (size_t)(count + 1) * sizeof(RefRow));
        (*rows)[count++] = (RefRow){line, line + tab, tab - 1, len - tab};
    }
    return count ? count : -1;
}

static int find_label(char **names, int n, const char *s, size_t len) {
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) return i;
    return -1;
}

static void add_name(char ***names, int *n, char *name) {
    *names = realloc(*names, (size_t)(*n + 1) * sizeof(char *));
    (*names)[(*n)++] = name;
}

// The labels in *names (*n of them: pointers into list, which is cut at the commas, or
// copies of the gold labels). Returns 0 if they must be refused.
static int ref_labels(char *list, const RefRow *rows, int n_rows, char ***names, int *n) {
    *names = NULL;
    *n = 0;
    for (char *p = list; p; p++) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        if (!*p || find_label(*names, *n, p, strlen(p)) >= 0 || *n == 1000) return 0;
        add_name(names, n, p);
        p = comma;
        if (!p) break;
    }
    for (int i = 0; !list && i < n_rows; i++) {
        if (find_label(*names, *n, rows[i].gold, rows[i].gold_len) >= 0) continue;
        if (*n == 1000) return 0;
        add_name(names, n, strndup(rows[i].gold, rows[i].gold_len));
    }
    if (*n < 2) return 0;
    for (int i = 0; list && i < n_rows; i++)
        if (find_label(*names, *n, rows[i].gold, rows[i].gold_len) < 0) return 0;
    return 1;
}

// The template with every "{text}" replaced by text, left to right.
static void ref_fill(Text *out, const char *template_, const char *text) {
    out->len = 0;
    text_append(out, "", 0);
    size_t n = strlen(template_);
    for (size_t i = 0; i < n;) {
        if (n - i >= 6 && memcmp(template_ + i, "{text}", 6) == 0) {
            text_puts(out, text);
            i += 6;
        } else {
            text_append(out, template_ + i++, 1);
        }
    }
}

static size_t count_placeholders(const char *template_) {
    size_t k = 0;
    for (const char *p = strstr(template_, "{text}"); p; p = strstr(p + 6, "{text}")) k++;
    return k;
}

// An answer or label as matched: without ASCII white space and punctuation around it,
// in ASCII upper case.
static int ascii_space_or_punct(unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '!' && c <= '/') || (c >= ':' && c <= '@') ||
           (c >= '[' && c <= '`') || (c >= '{' && c <= '~');
}

static void ref_normalise(Text *out, const char *s) {
    size_t a = 0, b = strlen(s);
    while (a < b && ascii_space_or_punct((unsigned char)s[a])) a++;
    while (b > a && ascii_space_or_punct((unsigned char)s[b - 1])) b--;
    out->len = 0;
    text_append(out, "", 0);
    for (size_t i = a; i < b; i++) {
        char c = s[i] >= 'a' && s[i] <= 'z' ? (char)(s[i] - 'a' + 'A') : s[i];
        text_append(out, &c, 1);
    }
}

// ----------------------------------------------------------------------------
// The reference report

static int compare_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int chars(const char *s) {
    int n = 0;
    for (size_t p = 0, len = strlen(s); p < len; n++) {
        size_t c = ref_utf8_char((const unsigned char *)s + p, len - p);
        p += c ? c : 1;
    }
    return n;
}

static void put_padded(Text *out, const char *s, int width) {
    for (int i = chars(s); i < width; i++) text_puts(out, " ");
    text_puts(out, s);
}

static void printf_text(Text *out, const char *fmt, ...) {
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);   // a padding may be as wide as the longest label
    char *buf = malloc((size_t)n + 1);
    vsnprintf(buf, (size_t)n + 1, fmt, again);
    va_end(again);
    va_end(ap);
    text_append(out, buf, (size_t)n);
    free(buf);
}

typedef struct {
    int k;              // classes
    const char **name;  // (k) sorted
    int *count;         // (k * k) rows: gold, columns: predicted
    int width;
} Classes;

static int class_of(const Classes *c, const char *label) {
    const char **hit = bsearch(&label, c->name, (size_t)c->k, sizeof(char *), compare_names);
    CHECK(hit, "a label is not among the classes");
    return (int)(hit - c->name);
}

static void classes_build(Classes *c, char **gold, const char **pred, int n) {
    c->name = malloc(2 * (size_t)n * sizeof(char *));
    memcpy(c->name, gold, (size_t)n * sizeof(char *));
    memcpy(c->name + n, pred, (size_t)n * sizeof(char *));
    qsort(c->name, 2 * (size_t)n, sizeof(char *), compare_names);
    c->k = 0;
    for (int i = 0; i < 2 * n; i++)
        if (c->k == 0 || strcmp(c->name[c->k - 1], c->name[i])) c->name[c->k++] = c->name[i];
    c->count = calloc((size_t)c->k * (size_t)c->k, sizeof(int));
    for (int i = 0; i < n; i++) c->count[class_of(c, gold[i]) * c->k + class_of(c, pred[i])]++;
    c->width = 12;
    for (int i = 0; i < c->k; i++)
        if (chars(c->name[i]) > c->width) c->width = chars(c->name[i]);
}

static void ref_confusion(Text *out, const Classes *c) {
    if (c->k > 100) {
        printf_text(out, "\nconfusion matrix left out: %d classes (it is printed up to 100)\n", c->k);
        return;
    }
    printf_text(out, "\nconfusion matrix (rows: gold, columns: predicted)\n%*s", c->width, "");
    for (int j = 0; j < c->k; j++) {
        text_puts(out, " ");
        put_padded(out, c->name[j], chars(c->name[j]) > 6 ? chars(c->name[j]) : 6);
    }
    text_puts(out, "\n");
    for (int i = 0; i < c->k; i++) {
        put_padded(out, c->name[i], c->width);
        for (int j = 0; j < c->k; j++)
            printf_text(out, " %*d", chars(c->name[j]) > 6 ? chars(c->name[j]) : 6, c->count[i * c->k + j]);
        text_puts(out, "\n");
    }
}

// The report as scikit-learn lays it out; avg[0..1] get the offsets of the two
// averages' lines, whose numbers the caller compares to 0.01.
static void ref_report(Text *out, char **gold, const char **pred, int n, size_t avg[2]) {
    Classes c;
    classes_build(&c, gold, pred, n);
    int correct = 0;
    for (int i = 0; i < c.k; i++) correct += c.count[i * c.k + i];
    const char *support_fmt = correct ? " %9.0f\n" : " %9.1f\n";
    printf_text(out, "%*s  %9s %9s %9s %9s\n\n", c.width, "", "precision", "recall", "f1-score", "support");
    double sum[6] = {0};   // precision, recall, f1; then each times the support
    for (int i = 0; i < c.k; i++) {
        int support = 0, predicted = 0, tp = c.count[i * c.k + i];
        for (int j = 0; j < c.k; j++) {
            support += c.count[i * c.k + j];
            predicted += c.count[j * c.k + i];
        }
        double p = predicted ? (double)tp / predicted : 0, r = support ? (double)tp / support : 0;
        double f1 = p + r > 0 ? 2 * p * r / (p + r) : 0;
        put_padded(out, c.name[i], c.width);
        printf_text(out, "  %9.2f %9.2f %9.2f", p, r, f1);
        printf_text(out, support_fmt, (double)support);
        double v[3] = {p, r, f1};
        for (int j = 0; j < 3; j++) {
            sum[j] += v[j];
            sum[3 + j] += v[j] * support;
        }
    }
    double a = (double)correct / n;
    printf_text(out, "\n%*s  %9s %9s %9.2f", c.width, "accuracy", "", "", a > 0 ? 2 * a * a / (a + a) : 0.0);
    printf_text(out, support_fmt, (double)n);
    const char *avg_name[2] = {"macro avg", "weighted avg"};
    for (int line = 0; line < 2; line++) {
        avg[line] = out->len;
        printf_text(out, "%*s ", c.width, avg_name[line]);
        for (int j = 0; j < 3; j++) printf_text(out, " %9.2f", line ? sum[3 + j] / n : sum[j] / c.k);
        printf_text(out, support_fmt, (double)n);
    }
    ref_confusion(out, &c);
    free(c.name);
    free(c.count);
}

// An average's line: the same text, the numbers within 0.01.
static int same_avg_line(const char *got, const char *want, int width) {
    if (strncmp(got, want, (size_t)width + 1)) return 0;
    double g[4], w[4];
    if (sscanf(got + width + 1, "%lf %lf %lf %lf", &g[0], &g[1], &g[2], &g[3]) != 4 ||
        sscanf(want + width + 1, "%lf %lf %lf %lf", &w[0], &w[1], &w[2], &w[3]) != 4)
        return 0;
    for (int j = 0; j < 4; j++)
        if (fabs(g[j] - w[j]) > 0.0100001) return 0;
    return 1;
}

static void check_report(char **gold, const char **pred, int n) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    classification_report(f, gold, (char **)pred, n);
    fclose(f);
    Text want = {0};
    size_t avg[2];
    ref_report(&want, gold, pred, n, avg);
    int width = (int)(strchr(want.data, 'p') - want.data) - 2;   // the header's indent
    size_t at = 0;
    for (int line = 0; line < 2; line++) {   // up to each average's line, then that line
        CHECK(size >= avg[line] && memcmp(buf + at, want.data + at, avg[line] - at) == 0,
              "the report differs before its average line %d:\n%s\n----\n%s", line, buf, want.data);
        const char *got_end = strchr(buf + avg[line], '\n'), *want_end = strchr(want.data + avg[line], '\n');
        CHECK(got_end && want_end && same_avg_line(buf + avg[line], want.data + avg[line], width),
              "average line %d differs:\n%s\n----\n%s", line, buf + avg[line], want.data + avg[line]);
        at = (size_t)(want_end - want.data);
        CHECK(got_end - buf == want_end - want.data, "average line %d has another length", line);
    }
    CHECK(size == want.len && memcmp(buf + at, want.data + at, size - at) == 0,
          "the report differs after the averages:\n%s\n----\n%s", buf, want.data);
    text_free(&want);
    free(buf);
}

// ----------------------------------------------------------------------------
// The run: what classify() does, stage by stage, with fatal() caught

enum { STAGE_ROWS, STAGE_LABELS, STAGE_PROMPTS, STAGE_DONE };

// Everything a fatal() may leave allocated (static: changed between setjmp and longjmp).
static struct {
    char *data, **texts, **gold;
    Labels lb;
    RowPrompts rp;
    Text want;       // the reference's user message of the row being prompted
    int stage;
    int must_fail;   // the reference refuses what the current stage reads
} run;

static int same_user(void) {
    return run.rp.user.len == run.want.len && memcmp(run.rp.user.data, run.want.data, run.want.len) == 0;
}

static void run_free(void) {
    for (int l = 0; run.lb.ids && l < run.lb.n; l++) free(run.lb.ids[l]);
    free(run.lb.ids);
    free(run.lb.len);
    free(run.lb.names);
    free(run.lb.buffer);
    text_free(&run.rp.user);
    text_free(&run.want);
    free(run.data);
    free(run.texts);
    free(run.gold);
    memset(&run, 0, sizeof(run));
}

typedef struct {
    const char *labels, *template_, *system;
    int kind, pick_by_length;
    const char *file;
    size_t file_len;
} Input;

static int split_input(const uint8_t *data, size_t size, Input *in, char **copy) {
    if (size < 1) return 0;
    memset(in, 0, sizeof(*in));
    int flags = data[0];
    in->kind = (flags >> 3) & 3;
    in->pick_by_length = flags >> 5 & 1;
    *copy = malloc(size);
    memcpy(*copy, data + 1, size - 1);
    (*copy)[size - 1] = '\0';
    char *p = *copy, *end = *copy + size - 1;
    const char **fields[3] = {&in->labels, &in->template_, &in->system};
    for (int i = 0; i < 3; i++) {
        if (!(flags >> i & 1)) continue;
        if (p >= end || !memchr(p, '\0', (size_t)(end - p))) return 0;   // the field has no end
        *fields[i] = p;
        p += strlen(p) + 1;
    }
    in->file = p;
    in->file_len = (size_t)(end - p);
    return 1;
}

// The reference's rows and labels, and the stage the run must be refused at.
typedef struct {
    RefRow *rows;
    int n_rows;
    char *list;     // a copy of --labels, cut at the commas
    char **names;
    int n_names;
    int fails_at;   // STAGE_DONE: none (the prompt stage is decided row by row)
} Expected;

static void expected_build(Expected *e, const Input *in) {
    memset(e, 0, sizeof(*e));
    e->list = in->labels ? strdup(in->labels) : NULL;
    e->n_rows = ref_rows(in->file, in->file_len, &e->rows);
    if (e->n_rows < 0) e->fails_at = STAGE_ROWS;
    else if (!ref_labels(e->list, e->rows, e->n_rows, &e->names, &e->n_names)) e->fails_at = STAGE_LABELS;
    else e->fails_at = STAGE_DONE;
}

static void expected_free(Expected *e) {
    for (int i = 0; !e->list && i < e->n_names; i++) free(e->names[i]);
    free(e->names);
    free(e->rows);
    free(e->list);
}

// Is a label not UTF-8, or no token at all (which labels_build refuses)?
static int some_label_unencodable(const Model *m, const Expected *e) {
    for (int l = 0; l < e->n_names; l++)
        if (check_encode(&m->tokenizer, e->names[l], strlen(e->names[l]), 1024, NULL) <= 0) return 1;
    return 0;
}

static void check_read_rows(const Expected *e, int n) {
    CHECK(n == e->n_rows, "%d rows, the reference has %d", n, e->n_rows);
    for (int i = 0; i < n; i++) {
        const RefRow *r = &e->rows[i];
        CHECK(strlen(run.texts[i]) == r->text_len && memcmp(run.texts[i], r->text, r->text_len) == 0,
              "row %d: the text differs", i + 1);
        CHECK(strlen(run.gold[i]) == r->gold_len && memcmp(run.gold[i], r->gold, r->gold_len) == 0,
              "row %d: the label differs", i + 1);
    }
}

static void check_labels(const Model *m, const Expected *e) {
    CHECK(run.lb.n == e->n_names, "%d labels, the reference has %d", run.lb.n, e->n_names);
    for (int l = 0; l < run.lb.n; l++) {
        CHECK(!strcmp(run.lb.names[l], e->names[l]), "label %d is '%s', the reference's '%s'", l, run.lb.names[l],
              e->names[l]);
        CHECK(run.lb.len[l] >= 1 + (m->gen.eot_id >= 0), "label %d has no token", l);
    }
}

// The first rows' prompts: each user message is the template filled in; a row is
// refused exactly when that, or the system prompt the template renders, is not UTF-8,
// or when it gives no token (no chat template, no BOS, and the message has no token).
static void check_prompts(const Input *in, const Model *m, int n) {
    static Session session;   // only its model and context size are read
    session.model = m;
    session.state.seq_len = MAX_SEQ;
    static ClassifyOptions co;
    co = (ClassifyOptions){in->system, in->template_ ? in->template_ : "{text}", in->labels, 0, 0};
    run.rp = (RowPrompts){&session, &co, path, "26 Jul 2024", 1, {0}};
    int uses_system = m->gen.chat_template != CHAT_NONE && in->system;
    for (int i = 0; i < n && i < PROMPT_ROWS; i++) {
        if (strlen(co.template_) + count_placeholders(co.template_) * strlen(run.texts[i]) > MAX_USER_BYTES) continue;
        ref_fill(&run.want, co.template_, run.texts[i]);
        int valid = ref_utf8_valid(run.want.data, run.want.len);
        int no_token = valid && m->gen.chat_template == CHAT_NONE && !m->gen.add_bos &&
                       check_encode(&m->tokenizer, run.want.data, run.want.len, 0, NULL) == 0;
        run.must_fail = !valid || no_token || (uses_system && !ref_utf8_valid(in->system, strlen(in->system)));
        check_rows(&run.rp, run.texts + i, 1);   // classify's check of every row, on this one
        CHECK(!run.must_fail, "row %d: the prompt was taken, but it is not UTF-8 or has no token", i + 1);
        CHECK(same_user(), "row %d: the user message is not the template filled in", i + 1);
    }
}

// The predictions: labels picked by the text's length, or the text as a free answer
// matched to a label (the first 64 rows: matching is quadratic).
static void check_predictions(const Input *in, const Expected *e, const char **pred, int n) {
    Text answer = {0}, label = {0};
    for (int i = 0; i < n; i++) {
        if (in->pick_by_length || i >= 64) {
            pred[i] = run.lb.names[strlen(run.texts[i]) % (size_t)run.lb.n];
            continue;
        }
        pred[i] = match_label(&run.lb, run.texts[i], strlen(run.texts[i]));
        const char *want = "invalid";
        ref_normalise(&answer, run.texts[i]);
        for (int l = 0; l < e->n_names; l++) {
            ref_normalise(&label, e->names[l]);
            if (answer.len == label.len && !memcmp(answer.data, label.data, label.len)) want = e->names[l];
        }
        CHECK(!strcmp(pred[i], want), "row %d: the answer matches '%s', the reference says '%s'", i + 1, pred[i], want);
    }
    text_free(&answer);
    text_free(&label);
}

static void run_stages(const Input *in, const Model *m, const Expected *e) {
    run.stage = STAGE_ROWS;
    run.must_fail = e->fails_at == STAGE_ROWS;
    int n = read_rows(run.data, in->file_len, path, &run.texts, &run.gold);
    CHECK(!run.must_fail, "the file was read, but the reference refuses it");
    check_read_rows(e, n);
    run.stage = STAGE_LABELS;
    run.must_fail = e->fails_at == STAGE_LABELS;
    labels_build(&run.lb, m, in->labels, path, run.gold, n);
    CHECK(!run.must_fail, "the labels were taken, but the reference refuses them");
    check_labels(m, e);
    run.stage = STAGE_PROMPTS;
    check_prompts(in, m, n);
    run.stage = STAGE_DONE;
    run.must_fail = 0;
    const char **pred = calloc((size_t)n, sizeof(char *));
    check_predictions(in, e, pred, n);
    check_report(run.gold, pred, n);
    free(pred);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Input in;
    char *copy = NULL;
    if (!split_input(data, size, &in, &copy)) {
        free(copy);
        return 0;
    }
    const Model *m = &models[in.kind];
    Expected e;
    expected_build(&e, &in);
    run.data = malloc(in.file_len + 1);   // as read_file gives the file: its bytes and a NUL
    memcpy(run.data, in.file, in.file_len);
    run.data[in.file_len] = '\0';
    jmp_buf on_fatal;
    fatal_message[0] = '\0';
    fatal_jump = &on_fatal;
    if (setjmp(on_fatal) == 0) {
        run_stages(&in, m, &e);
    } else {
        CHECK(fatal_message[0] != '\0', "fatal() without a message");
        int unencodable = run.stage == STAGE_LABELS && !strncmp(fatal_message, "label '", 7) &&
                          some_label_unencodable(m, &e);
        CHECK(run.must_fail || unencodable, "refused at stage %d, which the reference accepts: %s", run.stage,
              fatal_message);
        CHECK(run.stage != STAGE_PROMPTS || same_user(), "the refused row's user message is not the template filled in");
    }
    fatal_jump = NULL;
    run_free();
    expected_free(&e);
    free(copy);
    return 0;
}

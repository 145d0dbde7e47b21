// Prints run.c's classification report for a file of gold/predicted labels, so that
// tests/report_sklearn.py can compare it with scikit-learn's, character for character.
//
//   test_report FILE.tsv
//
// FILE.tsv: one `gold<TAB>pred` line per example (no header). The output is exactly
// what `run -m classify` prints after its rows: classification_report(stdout, gold,
// pred, n), i.e. the sklearn-style report followed by the confusion matrix.
#define TESTING
#include "../run.c"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_report FILE.tsv (gold<TAB>pred lines)\n");
        return 2;
    }
    size_t size;
    char *data = read_file(argv[1], &size);
    int n = 0, cap = 0;
    char **gold = NULL, **pred = NULL;
    for (char *line = data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        if (!*line) continue;
        char *tab = strchr(line, '\t');
        if (!tab) {
            fprintf(stderr, "test_report: expected gold<TAB>pred, got '%s'\n", line);
            return 2;
        }
        *tab = '\0';
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            gold = realloc(gold, (size_t)cap * sizeof(char *));
            pred = realloc(pred, (size_t)cap * sizeof(char *));
            if (!gold || !pred) return 2;
        }
        gold[n] = line;
        pred[n++] = tab + 1;
    }
    if (n == 0) {
        fprintf(stderr, "test_report: %s has no examples\n", argv[1]);
        return 2;
    }
    classification_report(stdout, gold, pred, n);
    free(gold);
    free(pred);
    free(data);
    return 0;
}

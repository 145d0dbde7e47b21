// Prints run.c's header table (format.c's HEADER) as tab-separated lines, one field a
// line: name, offset, type (u32, i32, f32, u64), and the range run accepts, lo and hi.
// tests/test_format.py compares it with FORMAT.md's table and export's HEADER_FIELDS.
#define TESTING
#include "../run.c"

int main(void) {
    static const char *const type_names[] = {[U32] = "u32", [I32] = "i32", [F32] = "f32", [U64] = "u64"};
    for (int f = 0; f < N_HEADER_FIELDS; f++) {
        const HeaderField *h = &HEADER[f];
        printf("%s\t%d\t%s\t%.17g\t%.17g\n", h->name, h->offset, type_names[h->type], h->lo, h->hi);
    }
    return 0;
}

/* libFuzzer target: descriptor text (lib/io/descriptor.c, lib/io/json.c,
 * and cJSON behind them). Any input must give TG_OK or TG_ERR_DESCRIPTOR
 * with a message - never OUT_OF_MEMORY (nothing fails allocations here, so
 * that would mean the syntax check passed a text cJSON refuses) - and an
 * accepted descriptor must write out as JSON that parses back to the same
 * text (the round trip tg_model_descriptor and checkpoints rely on).
 * Build and run: make fuzz (docs/RELIABILITY.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/descriptor.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0'; /* the API takes NUL-terminated text: an inner NUL ends it */
    tg_desc d;
    tg_status st = tg_desc_parse(s, &d);
    if (st != TG_OK) {
        if (st != TG_ERR_DESCRIPTOR || !tg_last_error()[0]) {
            fprintf(stderr, "status %d: %s\n", (int)st, tg_last_error());
            abort();
        }
        free(s);
        return 0;
    }
    char *j = tg_desc_to_json(&d);
    if (!j)
        abort();
    tg_desc d2;
    if (tg_desc_parse(j, &d2) != TG_OK) {
        fprintf(stderr, "written descriptor does not parse: %s\n%s\n", tg_last_error(), j);
        abort();
    }
    char *j2 = tg_desc_to_json(&d2);
    if (!j2 || strcmp(j, j2) != 0) {
        fprintf(stderr, "round trip differs:\n%s\n%s\n", j, j2 ? j2 : "(null)");
        abort();
    }
    free(j2);
    free(j);
    tg_desc_free(&d2);
    tg_desc_free(&d);
    free(s);
    return 0;
}

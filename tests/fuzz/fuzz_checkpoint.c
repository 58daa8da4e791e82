/* libFuzzer target: checkpoint bytes, through the public calls
 * tg_model_load_weights (into a fixed tiny model, the seeds' own) and
 * tg_model_load_ex and tg_model_load_memory, full and sampling-only
 * (lib/io/safetensors.c, lib/io/checkpoint.c, the descriptor
 * in the metadata). Every input must give TG_OK or one of the statuses a
 * bad file has, with a message - never OUT_OF_MEMORY, INTERNAL or a crash -
 * and a failed tg_model_load_weights must leave the model as it was.
 * The bytes reach the library as a file: a memfd named by /proc/self/fd.
 * Build and run: make fuzz (docs/RELIABILITY.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io/descriptor.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "transgan.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* the model of the seed corpus (tests/fuzz/make_seeds.c) */
#include "seed_model.h"

static tg_model *g_model;
static float *g_w0;
static size_t g_nw;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (tg_model_create(FUZZ_SEED_JSON, 1, &g_model) != TG_OK) {
        fprintf(stderr, "fuzz_checkpoint: %s\n", tg_last_error());
        abort();
    }
    tg_model_set_threads(g_model, 1);
    g_nw = g_model->gnet.P->total;
    g_w0 = malloc(g_nw * sizeof(float));
    return 0;
}

static int bad_file_status(tg_status st)
{
    return st == TG_ERR_FORMAT || st == TG_ERR_DTYPE || st == TG_ERR_SHAPE ||
           st == TG_ERR_MISSING || st == TG_ERR_NONFINITE || st == TG_ERR_DESCRIPTOR;
}

static void check(const char *call, tg_status st)
{
    if (st == TG_OK || (bad_file_status(st) && tg_last_error()[0]))
        return;
    fprintf(stderr, "%s: status %d (%s): %s\n", call, (int)st, tg_status_string(st), tg_last_error());
    abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    int fd = memfd_create("ckpt", 0);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
        abort();
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

    memcpy(g_w0, g_model->gnet.w, g_nw * sizeof(float));
    uint64_t steps = g_model->dnet.steps;
    tg_status st = tg_model_load_weights(g_model, path);
    check("tg_model_load_weights", st);
    if (st != TG_OK && (memcmp(g_w0, g_model->gnet.w, g_nw * sizeof(float)) != 0 ||
                        steps != g_model->dnet.steps)) {
        fprintf(stderr, "a failed tg_model_load_weights changed the model\n");
        abort();
    }
    /* the file and the memory loaders share one validating parser, which
     * checks names and shapes before it allocates a model (so a tiny input
     * naming a huge model fails fast): both must agree on every input, for a
     * full and a sampling-only load */
    for (uint32_t flags = 0; flags <= TG_LOAD_SAMPLING_ONLY; flags += TG_LOAD_SAMPLING_ONLY) {
        tg_model *m = NULL, *mm = NULL;
        st = tg_model_load_ex(path, flags, &m);
        check("tg_model_load_ex", st);
        tg_status sm = tg_model_load_memory(size ? (const void *)data : (const void *)"", size,
                                            flags, &mm);
        check("tg_model_load_memory", sm);
        if ((st == TG_OK) != (m != NULL) || (sm == TG_OK) != (mm != NULL) || st != sm) {
            fprintf(stderr, "file and memory loads disagree: %d / %d\n", (int)st, (int)sm);
            abort();
        }
        tg_model_destroy(m);
        tg_model_destroy(mm);
    }
    close(fd);
    return 0;
}

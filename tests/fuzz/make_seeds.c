/* Writes the checkpoint seed corpus of fuzz_checkpoint: the seed model
 * saved fresh, and after two steps in full, without optimiser state and
 * weights only. Usage: make_seeds DIR (make fuzz-seeds). */
#include <stdio.h>
#include <stdlib.h>

#include "seed_model.h"
#include "transgan.h"

static void ok(tg_status st)
{
    if (st != TG_OK) {
        fprintf(stderr, "make_seeds: %s\n", tg_last_error());
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    char p[4096];
    tg_model *m;
    ok(tg_model_create(FUZZ_SEED_JSON, 1, &m));
    snprintf(p, sizeof p, "%s/fresh.safetensors", argv[1]);
    ok(tg_model_save(m, p, 0));
    float real[16];
    for (int i = 0; i < 16; i++)
        real[i] = (float)(i % 5) / 5.0f - 0.4f;
    ok(tg_train_step(m, real, 1, NULL, NULL, NULL, NULL));
    ok(tg_train_step(m, real, 1, NULL, NULL, NULL, NULL));
    const char *names[] = {"full", "no-optimizer", "weights-only"};
    const uint32_t flags[] = {0, TG_SAVE_NO_OPTIMIZER, TG_SAVE_WEIGHTS_ONLY};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s.safetensors", argv[1], names[i]);
        ok(tg_model_save(m, p, flags[i]));
    }
    tg_model_destroy(m);
    return 0;
}

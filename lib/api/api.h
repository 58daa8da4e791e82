/* Internal to api/: what the public entry points share. api/ is the top
 * layer: every TG_API function is defined in it and nothing else is. */
#ifndef TG_API_H
#define TG_API_H

#include "../io/checkpoint.h"
#include "../io/descriptor.h"
#include "../models/model.h"
#include "../train/train.h"

/* The body of a computing entry point (tg_generate, tg_discriminate,
 * tg_train_step): evaluates `call` on the model's thread count and returns
 * its status, the caller's OpenMP maximum restored. A NULL model goes
 * straight to `call`, which reports it. */
#define TG_RETURN_ON_MODEL_THREADS(m, call)                                    \
    do {                                                                      \
        if (!(m))                                                             \
            return (call);                                                    \
        int caller_ = tg_dnn_threads_enter((m)->dnn, (m)->threads);           \
        tg_status st_ = (call);                                               \
        tg_dnn_threads_leave(caller_);                                        \
        return st_;                                                           \
    } while (0)


/* A model for a parsed descriptor (ownership taken, as tg_model_build). */
tg_status tg_api_model_new(tg_desc *desc, tg_model **out);

/* Fail with TG_ERR_STATE: `fn` needs `what`, which a model loaded with
 * TG_LOAD_SAMPLING_ONLY does not have. */
tg_status tg_api_sampling_only(const char *fn, const char *what);

/* Every one of labels[0 .. n) in 0 .. K-1 (labels NULL: nothing to check),
 * else INVALID_ARGUMENT naming fn, the array (`what`) and the index. */
tg_status tg_api_labels_in_range(const char *fn, const char *what, const int32_t *labels,
                                 size_t n, int K);

#endif

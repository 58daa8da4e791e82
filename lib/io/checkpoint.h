/* Internal: a model's state in a safetensors checkpoint
 * (docs/SPECIFICATION.md "Checkpoint"). */
#ifndef TG_CHECKPOINT_H
#define TG_CHECKPOINT_H

#include "../models/model.h"
#include "safetensors.h"

/* Load the opened file f (f->name named in messages) into m; m changes only
 * when every tensor and every metadata value is valid. */
tg_status tg_checkpoint_load(tg_model *m, const tg_st_file *f);
/* Load f into a model fresh from tg_model_define (no state arrays): the
 * metadata and every needed tensor's name and shape are checked before
 * anything is allocated; then the model's state is allocated (for a
 * sampling-only model, only the generator array it keeps) and read
 * directly. On failure the caller destroys m. */
tg_status tg_checkpoint_load_new(tg_model *m, const tg_st_file *f);
/* Write m to path; flags (already checked): TG_SAVE_*. */
tg_status tg_checkpoint_save(const tg_model *m, const char *path, uint32_t flags);

#endif

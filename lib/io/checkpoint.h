/* Internal: a model's state in a safetensors checkpoint
 * (docs/SPECIFICATION.md "Checkpoint"). */
#ifndef TG_CHECKPOINT_H
#define TG_CHECKPOINT_H

#include "../models/model.h"
#include "safetensors.h"

/* Load the opened file f (read from `path`, named in messages) into m;
 * m changes only when every tensor and every metadata value is valid. */
tg_status tg_checkpoint_load(tg_model *m, const tg_st_file *f, const char *path);
/* Write m to path; flags (already checked): TG_SAVE_*. */
tg_status tg_checkpoint_save(const tg_model *m, const char *path, uint32_t flags);

#endif

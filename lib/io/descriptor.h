/* Internal: the JSON model descriptor (docs/SPECIFICATION.md "Descriptor"),
 * parsed with cJSON into the tg_desc of core/desc.h and written back. */
#ifndef TG_DESCRIPTOR_H
#define TG_DESCRIPTOR_H

#include "../core/desc.h"

/* Parse descriptor JSON (NUL-terminated). On failure returns
 * TG_ERR_DESCRIPTOR with a message naming the key path
 * ("generator.depths[1]: must be a positive integer") or, for malformed
 * JSON, the line and column. *out is zeroed first; free with tg_desc_free. */
tg_status tg_desc_parse(const char *json, tg_desc *out);

/* The full descriptor (defaults included) as compact JSON that
 * tg_desc_parse and the reference accept; malloc'd, NULL on OOM. */
char *tg_desc_to_json(const tg_desc *d);

#endif

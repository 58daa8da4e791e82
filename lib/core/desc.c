/* The descriptor struct's one owned field; parsing is io/descriptor.c's. */
#include "desc.h"

void tg_desc_free(tg_desc *d)
{
    if (!d)
        return;
    free(d->name);
    memset(d, 0, sizeof *d);
}

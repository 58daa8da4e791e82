/* The descriptor struct's owned fields; parsing is io/descriptor.c's. */
#include "desc.h"

void tg_desc_free(tg_desc *d)
{
    if (!d)
        return;
    free(d->name);
    for (int i = 0; d->class_names && i < d->num_classes; i++)
        free(d->class_names[i]);
    free(d->class_names);
    memset(d, 0, sizeof *d);
}

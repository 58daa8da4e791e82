/* Internal: the thread count a call can use on a busy host (cpushare.c). */
#ifndef TG_CPUSHARE_H
#define TG_CPUSHARE_H

#define TG_CPUSHARE_MAX_WORKERS 255

/* Per model context: the OpenMP workers seen last, so that their spinning is
 * not mistaken for another process's load. Zero-initialise. */
typedef struct tg_cpushare {
    int caller;                            /* tid of the calling thread, 0 = none */
    int team;                              /* the team size the workers were learnt for */
    int nworkers;
    int workers[TG_CPUSHARE_MAX_WORKERS];  /* their tids */
} tg_cpushare;

/* Threads for the next call, 1..cap: cap where the CPUs are free, fewer by
 * the number of tasks of other threads and processes runnable right now. */
int tg_cpushare_threads(tg_cpushare *s, int cap);

#endif

/* How many OpenMP threads a call can use without stalling on a busy host.
 *
 * Why: libgomp's threads spin at every barrier of a parallel region, and each
 * of the dozens of oneDNN primitives in one forward pass ends in a barrier.
 * When another process holds one of the cores, the team member on that core
 * is descheduled and the other spins until the scheduler brings it back: a
 * 1.3 ms sprite becomes 300 ms. OMP_WAIT_POLICY=passive fixes it, but libgomp
 * reads it once, when it is loaded, before any code of ours runs, and a host
 * program cannot be asked to set it. So by default the library sizes each
 * call's team to the cores that are free at that moment: with one thread
 * there is no barrier to stall on, and the call degrades in proportion to the
 * CPU it gets.
 *
 * "Free" = CPUs this process may run on (omp_get_num_procs: the affinity mask)
 * minus the tasks that are runnable elsewhere right now. The kernel's
 * instantaneous count of runnable tasks is the 4th field of /proc/loadavg
 * ("running/total"); it includes the calling thread and any of our own
 * OpenMP workers still spinning after the previous call, which are not
 * competitors and are subtracted (their state is read from
 * /proc/self/task/TID/stat). Cost: 2-3 small reads, ~10 us, no allocation.
 * Where /proc cannot be read the count is not reduced. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <omp.h>

#include "cpushare.h"

/* the whole (small) file into buf, NUL-terminated; length or -1 */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

/* runnable tasks system-wide (4th field of /proc/loadavg), or -1 */
static int runnable_tasks(void)
{
    char buf[128];
    if (read_small("/proc/loadavg", buf, sizeof buf) < 0)
        return -1;
    /* "0.52 0.58 0.59 3/467 12345": skip three numbers */
    const char *p = buf;
    for (int i = 0; i < 3; i++) {
        p = strchr(p, ' ');
        if (!p)
            return -1;
        p++;
    }
    int running = 0, digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++)
        running = running * 10 + (*p - '0');
    return digits && *p == '/' ? running : -1;
}

/* 1 if thread `tid` of this process is running or runnable now */
static int task_running(int tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    if (read_small(path, buf, sizeof buf) < 0)
        return 0;
    const char *p = strrchr(buf, ')'); /* the name may hold spaces and ')' */
    return p && p[1] == ' ' && p[2] == 'R';
}

/* Learn the worker threads of the calling thread's OpenMP pool for a team of
 * n: libgomp keeps the same threads for a calling thread while the team size
 * does not grow, so this runs again only when the caller or n changes. */
static void learn_workers(tg_cpushare *s, int n)
{
    int caller = (int)syscall(SYS_gettid);
    if (caller == s->caller && n <= s->team)
        return;
    int tids[TG_CPUSHARE_MAX_WORKERS] = {0};
    int m = n - 1 < TG_CPUSHARE_MAX_WORKERS ? n - 1 : TG_CPUSHARE_MAX_WORKERS;
#pragma omp parallel num_threads(n)
    {
        int t = omp_get_thread_num();
        if (t > 0 && t <= m)
            tids[t - 1] = (int)syscall(SYS_gettid);
    }
    memcpy(s->workers, tids, sizeof tids);
    s->nworkers = m;
    s->caller = caller;
    s->team = n;
}

int tg_cpushare_threads(tg_cpushare *s, int cap)
{
    if (cap <= 1)
        return cap < 1 ? 1 : cap;
    int procs = omp_get_num_procs();
    int running = runnable_tasks();
    if (running < 0 || procs < 1)
        return cap;
    learn_workers(s, cap);
    int ours = 1; /* the calling thread */
    for (int i = 0; i < s->nworkers; i++)
        ours += task_running(s->workers[i]);
    int others = running - ours;
    int free_cpus = procs - (others > 0 ? others : 0);
    return free_cpus < 1 ? 1 : free_cpus < cap ? free_cpus : cap;
}

/*
 * Preloaded in front of libfaketime by scripts/any-day.sh.
 *
 * libfaketime fakes CLOCK_MONOTONIC too, but Debian's 0.9.10 does not intercept sem_clockwait,
 * which Python 3.11+ uses for every Lock.acquire(timeout=...), Event.wait(timeout) and so on:
 * the deadline Python computes from the faked clock reaches the kernel as is and lies decades
 * ahead, so a timed wait that should expire never does (wolfcw/libfaketime#390). Here the
 * deadline is moved back onto the kernel's clock by the same distance from now.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <semaphore.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NS 1000000000LL

int sem_clockwait(sem_t *sem, clockid_t clock, const struct timespec *deadline) {
    static int (*next)(sem_t *, clockid_t, const struct timespec *);
    if (next == NULL) {
        next = (int (*)(sem_t *, clockid_t, const struct timespec *))dlsym(RTLD_NEXT,
                                                                           "sem_clockwait");
    }
    if (clock != CLOCK_MONOTONIC) {
        return next(sem, clock, deadline);
    }
    struct timespec faked, kernel;
    clock_gettime(CLOCK_MONOTONIC, &faked);                 /* through libfaketime */
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &kernel);   /* around it */
    long long left = (deadline->tv_sec - faked.tv_sec) * NS + (deadline->tv_nsec - faked.tv_nsec);
    if (left < 0) {
        left = 0;
    }
    long long at = kernel.tv_sec * NS + kernel.tv_nsec + left;
    struct timespec moved = {.tv_sec = at / NS, .tv_nsec = at % NS};
    return next(sem, clock, &moved);
}

/*
 * eft_alloc_counter.h — counts heap allocations, for `eft bench --count-allocations`.
 *
 * libEFTAllocCounter.so is preloaded (LD_PRELOAD) into a benchmark run: it defines malloc, calloc,
 * realloc, posix_memalign, aligned_alloc and memalign, counts each call and forwards it to glibc's
 * allocator (free is glibc's own). The benchmark finds `eft_alloc_count` with dlsym; without the
 * library preloaded the symbol is absent and nothing is counted.
 */
#ifndef EFT_ALLOC_COUNTER_H
#define EFT_ALLOC_COUNTER_H

/* Allocation calls (of every thread) since the process started. */
long eft_alloc_count(void);

#endif

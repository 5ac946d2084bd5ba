// See include/eft_alloc_counter.h. glibc exports its allocator under __libc_* names, so the
// definitions here can forward to it without dlsym (which may itself allocate).
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include "eft_alloc_counter.h"

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

static atomic_long allocations;

static inline void count(void) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); }

__attribute__((visibility("default"))) long eft_alloc_count(void) { return atomic_load_explicit(&allocations, memory_order_relaxed); }

__attribute__((visibility("default"))) void *malloc(size_t size) {
  count();
  return __libc_malloc(size);
}

__attribute__((visibility("default"))) void *calloc(size_t n, size_t size) {
  count();
  return __libc_calloc(n, size);
}

__attribute__((visibility("default"))) void *realloc(void *pointer, size_t size) {
  count();
  return __libc_realloc(pointer, size);
}

__attribute__((visibility("default"))) void *memalign(size_t alignment, size_t size) {
  count();
  return __libc_memalign(alignment, size);
}

__attribute__((visibility("default"))) void *aligned_alloc(size_t alignment, size_t size) {
  count();
  return __libc_memalign(alignment, size);
}

__attribute__((visibility("default"))) int posix_memalign(void **out, size_t alignment, size_t size) {
  count();
  if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
  void *p = __libc_memalign(alignment, size);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

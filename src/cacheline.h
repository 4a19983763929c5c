/* cacheline.h - cache maintenance of a virtual address range for DMA: the
 * lowest layer, architecture code only. Never allocates, no locks, no
 * system calls.
 *
 *   x86-64 / i386  clflushopt where CPUID leaf 7 says so, else clflush, one
 *                  per line (line size from CPUID leaf 1), then sfence
 *                  (clflushopt) or mfence (clflush). Both directions write
 *                  back and invalidate.
 *   aarch64        to the device: dc cvac (clean to the point of coherency);
 *                  to the CPU: dc civac (clean and invalidate), one per line
 *                  (the smallest data line of CTR_EL0), then dsb sy. Linux
 *                  lets user space do both (SCTLR_EL1.UCI).
 *   others (32-bit ARM, ...)  nothing can be done from user space: 32-bit
 *                  ARM has no user cache maintenance to the point of
 *                  coherency (the cacheflush system call reaches the point
 *                  of unification only, for code), so false.
 */
#ifndef MP_CACHELINE_H
#define MP_CACHELINE_H

#include <stdbool.h>
#include <stddef.h>

/* Whether this build can do cache maintenance from user space. */
bool mp_cache_supported(void);
/* The line size the loops step by (bytes, a power of two), 0 when unsupported. */
size_t mp_cache_line(void);
/* Writes [p, p+len) back to memory (to_device) or writes back and drops
 * it (before the CPU reads what a device wrote). The range must be mapped.
 * False when the build cannot (mp_cache_supported). O(len / line). */
bool mp_cache_sync(const void *p, size_t len, bool to_device);

#endif

/* cacheline.c - cache maintenance instructions (see cacheline.h). */
#include "cacheline.h"

#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

#define CPUID_CLFLUSHOPT (1u << 23) /* leaf 7, subleaf 0, EBX */

/* 0 until probed; then the line size with bit 0 set when clflushopt exists
 * (a line is at least 8 bytes, so bit 0 is free). Idempotent: a race only
 * probes twice. */
static size_t g_x86;

static size_t x86_probe(void) {
  size_t v = __atomic_load_n(&g_x86, __ATOMIC_RELAXED);
  if (v) return v;
  unsigned a, b, c, d;
  size_t line = 64;
  if (__get_cpuid(1, &a, &b, &c, &d) && ((b >> 8) & 0xff)) line = ((b >> 8) & 0xff) * 8;
  bool opt = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & CPUID_CLFLUSHOPT);
  v = line | (opt ? 1 : 0);
  __atomic_store_n(&g_x86, v, __ATOMIC_RELAXED);
  return v;
}

bool mp_cache_supported(void) { return true; }
size_t mp_cache_line(void) { return x86_probe() & ~(size_t)1; }

bool mp_cache_sync(const void *p, size_t len, bool to_device) {
  (void)to_device; /* both write back and invalidate */
  size_t v = x86_probe(), line = v & ~(size_t)1;
  uintptr_t a = (uintptr_t)p & ~(uintptr_t)(line - 1), end = (uintptr_t)p + len;
  if (v & 1) {
    for (; a < end; a += line) __asm__ volatile("clflushopt %0" : "+m"(*(volatile char *)a));
    __asm__ volatile("sfence" ::: "memory");
  } else {
    for (; a < end; a += line) __asm__ volatile("clflush %0" : "+m"(*(volatile char *)a));
    __asm__ volatile("mfence" ::: "memory");
  }
  return true;
}

#elif defined(__aarch64__)

static size_t g_line; /* 0 until read */

size_t mp_cache_line(void) {
  size_t line = __atomic_load_n(&g_line, __ATOMIC_RELAXED);
  if (line) return line;
  uint64_t ctr;
  __asm__ volatile("mrs %0, ctr_el0" : "=r"(ctr));
  line = (size_t)4 << ((ctr >> 16) & 0xf); /* DminLine: log2 of words */
  __atomic_store_n(&g_line, line, __ATOMIC_RELAXED);
  return line;
}

bool mp_cache_supported(void) { return true; }

bool mp_cache_sync(const void *p, size_t len, bool to_device) {
  size_t line = mp_cache_line();
  uintptr_t a = (uintptr_t)p & ~(uintptr_t)(line - 1), end = (uintptr_t)p + len;
  if (to_device)
    for (; a < end; a += line) __asm__ volatile("dc cvac, %0" ::"r"(a) : "memory");
  else
    for (; a < end; a += line) __asm__ volatile("dc civac, %0" ::"r"(a) : "memory");
  __asm__ volatile("dsb sy" ::: "memory");
  return true;
}

#else

bool mp_cache_supported(void) { return false; }
size_t mp_cache_line(void) { return 0; }
bool mp_cache_sync(const void *p, size_t len, bool to_device) {
  (void)p;
  (void)len;
  (void)to_device;
  return false;
}

#endif

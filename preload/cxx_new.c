/* cxx_new.c - C++ operator new/delete, all 20 variants that Debian's
 * libjemalloc.so.2 exports (otherwise its operators would win for C++ code
 * loaded later and bypass the pool). Written in C with the mangled names so
 * that C programs need not load libstdc++.
 *
 * Failure follows the standard: call the new_handler while there is one,
 * then throw std::bad_alloc. libstdc++ is reached through weak references;
 * a C++ caller always has it loaded. A nothrow variant must return NULL
 * also when the handler throws ([new.delete.single]), which C cannot catch:
 * it is libstdc++'s own nothrow operator, whose try block calls the
 * throwing operator, ours (libstdc++'s is found in libstdc++ itself, not
 * through RTLD_NEXT, which could be jemalloc's). Without libstdc++ there is
 * no handler to throw: NULL after the handlers, as before.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>

#include "alloc.h"
#include "msg.h"
#include "preload.h"

#define EXPORT __attribute__((visibility("default")))

typedef void (*new_handler_fn)(void);
extern new_handler_fn _ZSt15get_new_handlerv(void) __attribute__((weak));   /* std::get_new_handler() */
extern void _ZSt17__throw_bad_allocv(void) __attribute__((weak, noreturn)); /* std::__throw_bad_alloc() */

static void *try_alloc(size_t n, size_t align) {
  mp_pool *p = mp_preload_pool();
  return align ? mp_aligned_alloc(p, align, n) : mp_malloc(p, n);
}

static void *new_impl(size_t n, size_t align, bool nothrow) {
  void *r = try_alloc(n, align);
  while (!r) {
    new_handler_fn h = _ZSt15get_new_handlerv ? _ZSt15get_new_handlerv() : NULL;
    if (!h) {
      if (nothrow) return NULL;
      if (_ZSt17__throw_bad_allocv) _ZSt17__throw_bad_allocv();
      mp_fatal("operator new(%zu): out of memory and no C++ runtime to throw std::bad_alloc", n);
    }
    h();
    r = try_alloc(n, align);
  }
  return r;
}

static void delete_impl(void *p) { mp_free(mp_preload_owner_pool(), p); }

/* libstdc++'s definition of a nothrow operator, or NULL (not loaded). */
static void *libstdcxx(const char *name) {
  void *h = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_NOLOAD);
  void *fn = h ? dlsym(h, name) : NULL;
  if (h) dlclose(h);
  return fn;
}

typedef void *(*nothrow_fn)(size_t, const void *);
typedef void *(*nothrow_aligned_fn)(size_t, size_t, const void *);

/* One slot per nothrow operator: resolved at its first call. */
#define NOTHROW(slot, name) \
  static void *slot;        \
  if (!__atomic_load_n(&slot, __ATOMIC_ACQUIRE)) __atomic_store_n(&slot, libstdcxx(name), __ATOMIC_RELEASE)

EXPORT void *_Znwm(size_t n) { return new_impl(n, 0, false); }
EXPORT void *_Znam(size_t n) { return new_impl(n, 0, false); }
EXPORT void *_ZnwmRKSt9nothrow_t(size_t n, const void *nt) {
  NOTHROW(real, "_ZnwmRKSt9nothrow_t");
  return real ? ((nothrow_fn)real)(n, nt) : new_impl(n, 0, true);
}
EXPORT void *_ZnamRKSt9nothrow_t(size_t n, const void *nt) {
  NOTHROW(real, "_ZnamRKSt9nothrow_t");
  return real ? ((nothrow_fn)real)(n, nt) : new_impl(n, 0, true);
}
EXPORT void *_ZnwmSt11align_val_t(size_t n, size_t a) { return new_impl(n, a, false); }
EXPORT void *_ZnamSt11align_val_t(size_t n, size_t a) { return new_impl(n, a, false); }
EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t a, const void *nt) {
  NOTHROW(real, "_ZnwmSt11align_val_tRKSt9nothrow_t");
  return real ? ((nothrow_aligned_fn)real)(n, a, nt) : new_impl(n, a, true);
}
EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t a, const void *nt) {
  NOTHROW(real, "_ZnamSt11align_val_tRKSt9nothrow_t");
  return real ? ((nothrow_aligned_fn)real)(n, a, nt) : new_impl(n, a, true);
}

EXPORT void _ZdlPv(void *p) { delete_impl(p); }
EXPORT void _ZdaPv(void *p) { delete_impl(p); }
EXPORT void _ZdlPvm(void *p, size_t n) {
  (void)n;
  delete_impl(p);
}
EXPORT void _ZdaPvm(void *p, size_t n) {
  (void)n;
  delete_impl(p);
}
EXPORT void _ZdlPvRKSt9nothrow_t(void *p, const void *nt) {
  (void)nt;
  delete_impl(p);
}
EXPORT void _ZdaPvRKSt9nothrow_t(void *p, const void *nt) {
  (void)nt;
  delete_impl(p);
}
EXPORT void _ZdlPvSt11align_val_t(void *p, size_t a) {
  (void)a;
  delete_impl(p);
}
EXPORT void _ZdaPvSt11align_val_t(void *p, size_t a) {
  (void)a;
  delete_impl(p);
}
EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t a) {
  (void)n;
  (void)a;
  delete_impl(p);
}
EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t a) {
  (void)n;
  (void)a;
  delete_impl(p);
}
EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, const void *nt) {
  (void)a;
  (void)nt;
  delete_impl(p);
}
EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, const void *nt) {
  (void)a;
  (void)nt;
  delete_impl(p);
}

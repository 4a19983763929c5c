/*
 * unaligned_check: run under LD_PRELOAD=libmempool.so inside the arm64 VM
 * (scripts/vm-test-arm). It takes one block from the pool, prints the
 * mapping of MEMPOOL_DEVICE that holds it (from /proc/self/maps), then makes
 * the accesses that fault on Device memory on real arm64 hardware: memset
 * and memcpy at odd offsets and an unaligned 4-byte store, and verifies what
 * was written. Exit 0 when the bytes read back as written, 1 otherwise.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_mapping(const void *p) {
  char line[512];
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return;
  while (fgets(line, sizeof line, f)) {
    unsigned long s, e;
    if (sscanf(line, "%lx-%lx", &s, &e) == 2 && (uintptr_t)p >= s && (uintptr_t)p < e)
      printf("unaligned_check: block %p in %s", p, line);
  }
  fclose(f);
}

int main(void) {
  unsigned char *p = malloc(4096), src[61];
  if (!p) return 1;
  print_mapping(p);
  fflush(stdout);
  memset(p, 0, 128);
  memset(p + 1, 0x5a, 37);
  for (size_t i = 0; i < sizeof src; i++) src[i] = (unsigned char)(i + 1);
  memcpy(p + 41, src, sizeof src);
  uint32_t v = 0x12345678;
  memcpy(p + 105, &v, sizeof v); /* may compile to one unaligned store */
  *(volatile uint32_t *)(void *)(p + 113) = v;
  int bad = p[0] != 0 || p[38] != 0;
  for (int i = 1; i <= 37; i++) bad |= p[i] != 0x5a;
  bad |= memcmp(p + 41, src, sizeof src) != 0 || memcmp(p + 105, &v, sizeof v) != 0;
  bad |= *(volatile uint32_t *)(void *)(p + 113) != v;
  printf("unaligned_check: unaligned memset, memcpy and stores %s\n", bad ? "read back WRONG" : "read back right");
  free(p);
  return bad;
}

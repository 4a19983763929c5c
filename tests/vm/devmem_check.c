/*
 * devmem_check: run under LD_PRELOAD=libmempool.so inside the test VM
 * (scripts/vm-test).  It allocates blocks of various sizes, fills and
 * verifies them, and checks through /proc/self/maps where they live:
 *
 *   --expect-pool      every block lies in a mapping of MEMPOOL_DEVICE
 *                      (default /dev/mem) whose physical addresses
 *                      (file offset + distance from the mapping start)
 *                      lie in [MEMPOOL_BASE, MEMPOOL_HIGH]
 *                      and, for each, mempool_phys (found with dlsym)
 *                      equals the maps' physical address and the kernel's:
 *                      /proc/self/pagemap's PFN where it gives one (device
 *                      dax), else read(2) of /dev/mem at it must give the
 *                      block's bytes (a /dev/mem mapping has no PFN there),
 *                      mempool_virt goes back, and the sync calls return
 *                      0 (MEMPOOL_SYNC=0: the cache instructions run on
 *                      /dev/mem's mapping; on 32-bit ARM, which has none,
 *                      -1 EOPNOTSUPP there). DEVMEM_CHECK_PHYS_START: the
 *                      physical address of the device's offset 0 (device
 *                      dax: its sysfs "resource"), 0 for /dev/mem
 *   --expect-fallback  no block lies in a mapping of MEMPOOL_DEVICE
 *
 * Exit status 0 when every check passed, 1 otherwise, 2 on bad usage.
 * Messages go to stdout and start with "devmem_check:", so that the
 * caller can look for the library's own "mempool:" lines on stderr.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NAME "devmem_check"

static int failures;

#define FAIL(...)                                                              \
	do {                                                                   \
		printf(NAME ": FAIL: " __VA_ARGS__);                          \
		putchar('\n');                                                 \
		failures++;                                                    \
	} while (0)

/* /proc/self/maps read into a static buffer, so that reading it does not
 * allocate (and so does not change what it describes). */
static char maps[1 << 20];

static int read_maps(void)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	size_t len = 0;

	if (fd < 0) {
		printf(NAME ": cannot open /proc/self/maps: %s\n", strerror(errno));
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, maps + len, sizeof(maps) - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			printf(NAME ": read /proc/self/maps: %s\n", strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(maps) - 1) {
			printf(NAME ": /proc/self/maps too large\n");
			close(fd);
			return -1;
		}
	}
	close(fd);
	maps[len] = '\0';
	return 0;
}

struct mapping {
	uintptr_t start, end;
	unsigned long long offset;
	char path[256];
};

/* Find the mapping that holds address p; returns 0 when found. */
static int find_mapping(uintptr_t p, struct mapping *m)
{
	const char *line = maps;

	while (*line) {
		const char *eol = strchr(line, '\n');
		size_t llen = eol ? (size_t)(eol - line) : strlen(line);
		char buf[512];
		unsigned long start, end;
		unsigned long long off;
		char perms[8], dev[16];
		unsigned long inode;
		int consumed = 0;

		if (llen >= sizeof(buf))
			llen = sizeof(buf) - 1;
		memcpy(buf, line, llen);
		buf[llen] = '\0';
		line = eol ? eol + 1 : line + strlen(line);

		if (sscanf(buf, "%lx-%lx %7s %llx %15s %lu %n", &start, &end, perms,
			   &off, dev, &inode, &consumed) < 6)
			continue;
		if (p < start || p >= end)
			continue;
		m->start = start;
		m->end = end;
		m->offset = off;
		m->path[0] = '\0';
		if (consumed > 0) {
			const char *path = buf + consumed;

			while (*path == ' ')
				path++;
			snprintf(m->path, sizeof(m->path), "%s", path);
		}
		return 0;
	}
	return -1;
}

static int parse_u64(const char *name, unsigned long long *out)
{
	const char *s = getenv(name);
	char *end;

	if (!s || !*s) {
		printf(NAME ": %s is not set\n", name);
		return -1;
	}
	errno = 0;
	*out = strtoull(s, &end, 0);
	if (errno || *end) {
		printf(NAME ": cannot parse %s=%s\n", name, s);
		return -1;
	}
	return 0;
}

/* The physical address of the byte at p from /proc/self/pagemap (root:
 * the PFN, bits 0-54, of a present page, bit 63), or ~0 when it gives
 * none: a /dev/mem mapping is VM_PFNMAP, which the page walker behind
 * pagemap skips as a hole (device dax mappings are not). */
static unsigned long long pagemap_phys(const void *p)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint64_t entry = 0, pfn;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	off_t at = (off_t)((uintptr_t)p / (uintptr_t)pg * sizeof(entry));
	ssize_t n = fd >= 0 ? pread(fd, &entry, sizeof(entry), at) : -1;

	if (fd >= 0)
		close(fd);
	pfn = entry & ((1ull << 55) - 1);
	if (n != (ssize_t)sizeof(entry) || !(entry >> 63) || !pfn)
		return ~0ull;
	return pfn * (unsigned long long)pg + (uintptr_t)p % (uintptr_t)pg;
}

/* What the kernel reads at physical address phys through read(2) on
 * /dev/mem (its own mapping of that memory, not the library's): 0 when n
 * bytes could be read (not for a range a driver holds exclusively, such
 * as pmem's). */
/* n (at most a page) bytes at physical address phys, as the kernel gives
 * them: read(2) of /dev/mem, or where it refuses (arm64: memory outside
 * its linear map, a no-map range, is EFAULT to read) a mapping of our own
 * made as the library's (O_SYNC unless MEMPOOL_SYNC=0), read byte by byte
 * (Device memory faults on unaligned loads). */
static int devmem_read(unsigned long long phys, unsigned char *buf, size_t n)
{
	const char *sync = getenv("MEMPOOL_SYNC");
	int fd = open("/dev/mem", O_RDONLY | O_CLOEXEC);
	ssize_t got = fd >= 0 ? pread(fd, buf, n, (off_t)phys) : -1;

	if (fd >= 0)
		close(fd);
	if (got == (ssize_t)n || errno != EFAULT)
		return got == (ssize_t)n ? 0 : -1;
	fd = open("/dev/mem", O_RDONLY | O_CLOEXEC | (sync && !strcmp(sync, "0") ? 0 : O_SYNC));
	if (fd < 0)
		return -1;
	unsigned long long page = phys & ~4095ull;
	volatile unsigned char *m = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, (off_t)page);
	close(fd);
	if (m == MAP_FAILED)
		return -1;
	for (size_t i = 0; i < n; i++)
		buf[i] = m[phys - page + i];
	munmap((void *)m, 8192);
	return 0;
}

/* 1 where the sync calls have nothing to run: a cached mapping
 * (MEMPOOL_SYNC=0) on 32-bit ARM, which has no user cache maintenance to
 * the point of coherency (src/cacheline.c): -1 EOPNOTSUPP. */
static int sync_unsupported(void)
{
#if defined(__arm__)
	const char *sync = getenv("MEMPOOL_SYNC");

	return sync && !strcmp(sync, "0");
#else
	return 0;
#endif
}

struct dma_api {
	void *pool;
	uint64_t (*phys)(const void *, const void *);
	void *(*virt)(const void *, uint64_t);
	int (*sync_dev)(const void *, const void *, size_t);
	int (*sync_cpu)(const void *, const void *, size_t);
};

static int dma_api_find(struct dma_api *a)
{
	void *(*get)(void) = (void *(*)(void))dlsym(RTLD_DEFAULT, "mempool_default");

	a->phys = (uint64_t(*)(const void *, const void *))dlsym(RTLD_DEFAULT, "mempool_phys");
	a->virt = (void *(*)(const void *, uint64_t))dlsym(RTLD_DEFAULT, "mempool_virt");
	a->sync_dev = (int (*)(const void *, const void *, size_t))dlsym(RTLD_DEFAULT, "mempool_sync_for_device");
	a->sync_cpu = (int (*)(const void *, const void *, size_t))dlsym(RTLD_DEFAULT, "mempool_sync_for_cpu");
	a->pool = get ? get() : NULL;
	return a->pool && a->phys && a->virt && a->sync_dev && a->sync_cpu ? 0 : -1;
}

/* A block in the device: the library's address against the maps' and
 * against what the kernel reads at that physical address (the block's own
 * pattern, written back by sync_for_device). */
static void check_dma(const struct dma_api *a, size_t i, unsigned char *p, size_t size,
		      unsigned long long maps_phys)
{
	unsigned long long lib = a->phys(a->pool, p);
	unsigned char seen[64];
	size_t n = size < sizeof(seen) ? size : sizeof(seen);

	const char *start = getenv("DEVMEM_CHECK_PHYS_START");
	unsigned long long want = maps_phys + (start ? strtoull(start, NULL, 0) : 0);

	printf(NAME ": block %2zu: mempool_phys 0x%llx\n", i, lib);
	if (lib != want)
		FAIL("block %zu: mempool_phys 0x%llx, the maps say 0x%llx", i, lib, want);
	if (a->virt(a->pool, lib) != p)
		FAIL("block %zu: mempool_virt(0x%llx) is not %p", i, lib, (void *)p);
	errno = 0;
	int dev_rc = a->sync_dev(a->pool, p, size), dev_errno = errno;
	errno = 0;
	int cpu_rc = a->sync_cpu(a->pool, p, size), cpu_errno = errno;
	if (sync_unsupported()) {
		if (dev_rc != -1 || dev_errno != EOPNOTSUPP || cpu_rc != -1 || cpu_errno != EOPNOTSUPP)
			FAIL("block %zu: the sync calls gave %d (%s) and %d (%s), not -1 EOPNOTSUPP", i, dev_rc,
			     strerror(dev_errno), cpu_rc, strerror(cpu_errno));
	} else if (dev_rc != 0 || cpu_rc != 0)
		FAIL("block %zu: a sync call failed: %s", i, strerror(dev_rc ? dev_errno : cpu_errno));
	/* the kernel's word: the page table's PFN where pagemap gives one,
	 * else what read(2) of /dev/mem finds at that address */
	unsigned long long kernel = pagemap_phys(p);
	if (kernel != ~0ull) {
		printf(NAME ": block %2zu: pagemap 0x%llx\n", i, kernel);
		if (kernel != lib)
			FAIL("block %zu: mempool_phys 0x%llx, pagemap says 0x%llx", i, lib, kernel);
	} else if (devmem_read(lib, seen, n) != 0)
		FAIL("block %zu: no PFN in pagemap and read(/dev/mem) at 0x%llx failed: %s", i, lib, strerror(errno));
	else if (memcmp(seen, p, n) != 0)
		FAIL("block %zu: /dev/mem at 0x%llx does not hold the block's bytes", i, lib);
}

static unsigned char pattern(size_t block, size_t i)
{
	return (unsigned char)((i * 131u + block * 29u + (i >> 8)) ^ 0xa5u);
}

enum kind { KIND_MALLOC, KIND_CALLOC, KIND_REALLOC };

struct block {
	size_t size;
	enum kind kind;
	unsigned char *p;
};

static struct block blocks[] = {
	{ 16, KIND_MALLOC, NULL },	  { 24, KIND_MALLOC, NULL },
	{ 100, KIND_MALLOC, NULL },	  { 256, KIND_MALLOC, NULL },
	{ 1000, KIND_MALLOC, NULL },	  { 4096, KIND_MALLOC, NULL },
	{ 10000, KIND_MALLOC, NULL },	  { 65536, KIND_MALLOC, NULL },
	{ 300000, KIND_MALLOC, NULL },	  { 1 << 20, KIND_MALLOC, NULL },
	{ 16, KIND_MALLOC, NULL },	  { 5000, KIND_CALLOC, NULL },
	{ 200000, KIND_CALLOC, NULL },	  { 40000, KIND_REALLOC, NULL },
};

#define NBLOCKS (sizeof(blocks) / sizeof(blocks[0]))

static void usage(void)
{
	fprintf(stderr, "usage: " NAME " --expect-pool | --expect-fallback\n");
}

int main(int argc, char **argv)
{
	const char *device = getenv("MEMPOOL_DEVICE");
	unsigned long long base = 0, high = 0;
	int expect_pool;
	size_t i, j, in_pool = 0;

	if (argc != 2) {
		usage();
		return 2;
	}
	if (strcmp(argv[1], "--expect-pool") == 0)
		expect_pool = 1;
	else if (strcmp(argv[1], "--expect-fallback") == 0)
		expect_pool = 0;
	else {
		usage();
		return 2;
	}
	if (!device || !*device)
		device = "/dev/mem";
	if (expect_pool && (parse_u64("MEMPOOL_BASE", &base) ||
			    parse_u64("MEMPOOL_HIGH", &high)))
		return 2;
	struct dma_api dma = { 0 };
	if (expect_pool && dma_api_find(&dma)) {
		printf(NAME ": FAIL: no mempool_default pool or DMA call (dlsym)\n");
		return 1;
	}

	/* Allocate and fill every block. */
	for (i = 0; i < NBLOCKS; i++) {
		struct block *b = &blocks[i];

		switch (b->kind) {
		case KIND_MALLOC:
			b->p = malloc(b->size);
			break;
		case KIND_CALLOC:
			b->p = calloc(b->size / 8, 8);
			break;
		case KIND_REALLOC:
			/* grow a small block; its contents must survive */
			b->p = malloc(64);
			if (b->p) {
				unsigned char *q;

				for (j = 0; j < 64; j++)
					b->p[j] = pattern(i, j);
				q = realloc(b->p, b->size);
				if (!q) {
					free(b->p);
					b->p = NULL;
					break;
				}
				b->p = q;
				for (j = 0; j < 64; j++)
					if (b->p[j] != pattern(i, j)) {
						FAIL("block %zu: realloc lost byte %zu",
						     i, j);
						break;
					}
			}
			break;
		}
		if (!b->p) {
			FAIL("block %zu: allocation of %zu bytes failed", i,
			     b->size);
			continue;
		}
		if (b->kind == KIND_CALLOC) {
			for (j = 0; j < b->size; j++)
				if (b->p[j]) {
					FAIL("block %zu: calloc byte %zu is 0x%02x",
					     i, j, b->p[j]);
					break;
				}
		}
		if ((uintptr_t)b->p % 16 != 0)
			FAIL("block %zu: %p is not 16-byte aligned", i,
			     (void *)b->p);
		for (j = 0; j < b->size; j++)
			b->p[j] = pattern(i, j);
	}

	/* Blocks must not overlap... */
	for (i = 0; i < NBLOCKS; i++)
		for (j = i + 1; j < NBLOCKS; j++) {
			struct block *a = &blocks[i], *b = &blocks[j];

			if (!a->p || !b->p)
				continue;
			if (a->p < b->p + b->size && b->p < a->p + a->size)
				FAIL("blocks %zu and %zu overlap", i, j);
		}
	/* ...and so each must still hold its own pattern. */
	for (i = 0; i < NBLOCKS; i++) {
		struct block *b = &blocks[i];

		if (!b->p)
			continue;
		for (j = 0; j < b->size; j++)
			if (b->p[j] != pattern(i, j)) {
				FAIL("block %zu: byte %zu reads 0x%02x, wrote 0x%02x",
				     i, j, b->p[j], pattern(i, j));
				break;
			}
	}

	/* Where do they live? */
	if (read_maps())
		return 1;
	for (i = 0; i < NBLOCKS; i++) {
		struct block *b = &blocks[i];
		uintptr_t p = (uintptr_t)b->p;
		struct mapping m;
		int is_device;

		if (!b->p)
			continue;
		if (find_mapping(p, &m)) {
			FAIL("block %zu: %p is in no mapping", i, (void *)b->p);
			continue;
		}
		is_device = strcmp(m.path, device) == 0;
		if (is_device) {
			unsigned long long phys = m.offset + (p - m.start);
			unsigned long long last = phys + b->size - 1;

			in_pool++;
			printf(NAME ": block %2zu %7zu B at %p phys 0x%llx (%s)\n",
			       i, b->size, (void *)b->p, phys, m.path);
			if (!expect_pool)
				FAIL("block %zu: %p is in %s, expected a fallback "
				     "allocation",
				     i, (void *)b->p, device);
			else if (phys < base || last > high)
				FAIL("block %zu: physical 0x%llx-0x%llx is outside "
				     "[0x%llx, 0x%llx]",
				     i, phys, last, base, high);
			else
				check_dma(&dma, i, b->p, b->size, phys);
			/* Each chunk is a mapping of its own: a block may
			 * span several, at contiguous device offsets. */
			struct mapping next = m;
			while (p + b->size > next.end &&
			       !find_mapping(next.end, &next) &&
			       strcmp(next.path, device) == 0 &&
			       next.offset == m.offset + (next.start - m.start))
				;
			if (p + b->size > next.end)
				FAIL("block %zu: %p + %zu runs past the device "
				     "mappings at contiguous offsets (0x%" PRIxPTR ")",
				     i, (void *)b->p, b->size, next.end);
		} else {
			printf(NAME ": block %2zu %7zu B at %p (%s)\n", i, b->size,
			       (void *)b->p, m.path[0] ? m.path : "anonymous");
			if (expect_pool)
				FAIL("block %zu: %p is not in a %s mapping "
				     "(mapping %" PRIxPTR "-%" PRIxPTR " %s)",
				     i, (void *)b->p, device, m.start, m.end,
				     m.path[0] ? m.path : "anonymous");
		}
	}

	for (i = 0; i < NBLOCKS; i++) {
		free(blocks[i].p);
		blocks[i].p = NULL;
	}

	/* Memory freed to the pool can be had again. */
	{
		unsigned char *p = malloc(1 << 20);

		if (!p)
			FAIL("malloc(1 MiB) after free failed");
		else {
			memset(p, 0x5a, 1 << 20);
			if (p[0] != 0x5a || p[(1 << 20) - 1] != 0x5a)
				FAIL("1 MiB block after free reads back wrong");
			free(p);
		}
	}

	printf(NAME ": %zu of %zu blocks in %s, %d failure(s) (%s)\n", in_pool,
	       (size_t)NBLOCKS, device, failures,
	       expect_pool ? "expected pool" : "expected fallback");
	fflush(stdout);
	return failures ? 1 : 0;
}

/* map.h - the region map (MEMPOOL_MAP): every range in address order, for
 * scripts/mempool-map to draw. Format, one item per line:
 *   # mempool map v2
 *   region BASE_HEX SIZE_BYTES DEVICE
 *   range OFFSET_HEX SIZE_BYTES free|used|span:CLASS_BYTES|away
 * ("away": chunks of the shared window this process does not hold).
 * DEVICE is the rest of its line (it may hold spaces), with control
 * characters, DEL, bytes >= 0x80 and '\' written as \xNN (msg.h): no
 * value can add or break a line. BASE_HEX is the device offset of the
 * region's first byte: its physical address for /dev/mem (a file: the
 * file offset standing in for one; u-dma-buf: add its phys_addr, as
 * mempool_phys does). OFFSET_HEX counts from it: a range's physical
 * address is BASE_HEX + OFFSET_HEX.
 */
#ifndef MP_MAP_H
#define MP_MAP_H

#include "mp_types.h"
#include "outfile.h"

void mp_map_write(mp_outfile *f, mp_pool *pool);
/* Writes the map to path, replaced, with outfile.h's checks (never the
 * region's file); 0 or -errno with a one-line reason in err. */
int mp_map_write_to(const char *path, mp_pool *pool, char *err, size_t errlen);

#endif

/* map.h - the region map (MEMPOOL_MAP): every range in address order, for
 * scripts/mempool-map to draw. Format, one item per line:
 *   # mempool map v1
 *   region DEVICE BASE_HEX SIZE_BYTES
 *   range OFFSET_HEX SIZE_BYTES free|used|span:CLASS_BYTES|away
 * ("away": chunks of the shared window this process does not hold)
 */
#ifndef MP_MAP_H
#define MP_MAP_H

#include "mp_types.h"

void mp_map_write(int fd, mp_pool *pool);
/* Writes the map to path (truncated); 0 or -errno. */
int mp_map_write_to(const char *path, mp_pool *pool);

#endif

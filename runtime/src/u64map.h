/*
 * A small open-addressing hash map from non-zero u64 keys to tensors, used by
 * the executor for the weight store (key = fingerprint) and the resident
 * objects (key = object id).  Keys are already well-mixed hashes or driver
 * counters; we still mix them so sequential ids spread over the table.
 */
#ifndef GENIE_U64MAP_H
#define GENIE_U64MAP_H

#include <stdint.h>

#include "genie/status.h"
#include "genie/tensor.h"

typedef struct genie_u64map_entry {
    uint64_t       key;      /* 0 = empty slot, UINT64_MAX = tombstone */
    genie_tensor_t tensor;
    char          *name;     /* optional, malloc'd */
    uint64_t       session;  /* owning session id, 0 = none */
} genie_u64map_entry_t;

typedef struct genie_u64map {
    genie_u64map_entry_t *slots;   /* (cap) */
    uint64_t              cap;     /* power of two */
    uint64_t              count;   /* live entries */
    uint64_t              used;    /* live + tombstones */
} genie_u64map_t;

void                  genie_u64map_init(genie_u64map_t *m);
void                  genie_u64map_clear(genie_u64map_t *m);   /* releases tensors */
genie_u64map_entry_t *genie_u64map_get(const genie_u64map_t *m, uint64_t key);
/* Insert or replace (the replaced tensor is released).  Takes ownership of
 * the reference held by *t and of nothing else; name is copied. */
genie_status_t        genie_u64map_put(genie_u64map_t *m, uint64_t key, genie_tensor_t *t,
                                       const char *name);
/* Remove and release; returns 1 if the key was present. */
int                   genie_u64map_del(genie_u64map_t *m, uint64_t key);

#endif

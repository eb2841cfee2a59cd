/*
 * Open-addressing (linear probing) u64 -> tensor map; see u64map.h.
 */
#include "u64map.h"

#include <stdlib.h>
#include <string.h>

#define TOMBSTONE UINT64_MAX

static uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

void genie_u64map_init(genie_u64map_t *m)
{
    memset(m, 0, sizeof(*m));
}

void genie_u64map_clear(genie_u64map_t *m)
{
    for (uint64_t i = 0; i < m->cap; i++) {
        genie_u64map_entry_t *e = &m->slots[i];
        if (e->key != 0 && e->key != TOMBSTONE) {
            genie_tensor_release(&e->tensor);
            free(e->name);
        }
    }
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

genie_u64map_entry_t *genie_u64map_get(const genie_u64map_t *m, uint64_t key)
{
    if (m->cap == 0 || key == 0 || key == TOMBSTONE) {
        return NULL;
    }
    for (uint64_t i = mix(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        genie_u64map_entry_t *e = &m->slots[i];
        if (e->key == key) {
            return e;
        }
        if (e->key == 0) {
            return NULL;
        }
    }
}

static genie_status_t grow(genie_u64map_t *m)
{
    uint64_t ncap = m->cap ? m->cap * 2 : 64;
    genie_u64map_entry_t *old = m->slots;
    uint64_t ocap = m->cap;

    /* Rehash in place of tombstones when the table is mostly dead. */
    if (m->count * 4 < m->cap) {
        ncap = m->cap;
    }
    m->slots = calloc(ncap, sizeof(*m->slots));
    if (m->slots == NULL) {
        m->slots = old;
        return genie_set_error(GENIE_ERR_NOMEM, "executor: object table out of memory");
    }
    m->cap  = ncap;
    m->used = m->count;
    for (uint64_t i = 0; i < ocap; i++) {
        if (old[i].key != 0 && old[i].key != TOMBSTONE) {
            uint64_t j = mix(old[i].key) & (ncap - 1);
            while (m->slots[j].key != 0) {
                j = (j + 1) & (ncap - 1);
            }
            m->slots[j] = old[i];
        }
    }
    free(old);
    return GENIE_OK;
}

genie_status_t genie_u64map_put(genie_u64map_t *m, uint64_t key, genie_tensor_t *t,
                                const char *name)
{
    genie_u64map_entry_t *e = genie_u64map_get(m, key);
    char *copy = NULL;

    if (key == 0 || key == TOMBSTONE) {
        return genie_set_error(GENIE_ERR_INVALID, "executor: object id %llu is reserved",
                               (unsigned long long)key);
    }
    if (name != NULL && (copy = strdup(name)) == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "executor: out of memory");
    }
    if (e != NULL) {
        genie_tensor_release(&e->tensor);
        free(e->name);
        e->tensor  = *t;
        e->name    = copy;
        e->session = 0;
        t->storage = NULL;
        return GENIE_OK;
    }
    if ((m->used + 1) * 4 >= m->cap * 3) {
        genie_status_t st = grow(m);
        if (st != GENIE_OK) {
            free(copy);
            return st;
        }
    }
    for (uint64_t i = mix(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        e = &m->slots[i];
        if (e->key == 0 || e->key == TOMBSTONE) {
            if (e->key == 0) {
                m->used++;
            }
            e->key     = key;
            e->tensor  = *t;
            e->name    = copy;
            e->session = 0;
            t->storage = NULL;
            m->count++;
            return GENIE_OK;
        }
    }
}

int genie_u64map_del(genie_u64map_t *m, uint64_t key)
{
    genie_u64map_entry_t *e = genie_u64map_get(m, key);

    if (e == NULL) {
        return 0;
    }
    genie_tensor_release(&e->tensor);
    free(e->name);
    e->name    = NULL;
    e->session = 0;
    e->key     = TOMBSTONE;
    m->count--;
    return 1;
}

/*
 * What the SRG's own files (srg.c, srg_codec.c, srg_json.c, srg_cost.c) share
 * and nobody else may rely on: the layout of struct genie_srg, its arena, and
 * the checks the builder and the decoder must apply identically (shapes,
 * strings, enum ranges), so that a graph built in the frontend and a graph
 * decoded on an executor obey exactly the same rules.
 *
 * Storage: every value and node lives in the graph's arena and is reached
 * through a pointer table, so growing the tables never moves a value or node
 * and the pointers handed out by genie_srg_value()/genie_srg_node() stay valid
 * until genie_srg_destroy(), as srg.h promises, even while a graph is still
 * being built.
 */
#ifndef GENIE_SRG_INTERNAL_H
#define GENIE_SRG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "genie/srg.h"

/* Format limits beyond those in srg.h, enforced by builder and decoder alike. */
#define GENIE_SRG_MAX_IDS     GENIE_SRG_NONE   /* ids are < 0xFFFFFFFF (NONE is reserved) */
#define GENIE_SRG_MAX_NBYTES  GENIE_MAX_TENSOR_BYTES /* largest tensor a value may describe */

typedef struct genie_srg_arena_block genie_srg_arena_block_t;

typedef struct genie_srg_arena {
    genie_srg_arena_block_t *head;       /* block being filled; older ones follow */
    size_t                   next_size;  /* payload size of the next shared block */
} genie_srg_arena_t;

struct genie_srg {
    genie_srg_value_t **values;     /* (cap_values), first n_values in use */
    genie_srg_node_t  **nodes;      /* (cap_nodes),  first n_nodes in use  */
    uint32_t            n_values;
    uint32_t            cap_values;
    uint32_t            n_nodes;
    uint32_t            cap_nodes;
    genie_srg_arena_t   arena;      /* values, nodes, id lists, attrs, strings */
};

/* Arena allocation, aligned for any field type.  `n * size` is checked for
 * overflow; returns NULL when out of memory (no error recorded: the caller
 * knows what it was allocating and says so). */
void *genie_srg_alloc(genie_srg_t *srg, size_t n, size_t size);
/* Arena copy of s[0..len) plus a terminating NUL. */
char *genie_srg_strdup(genie_srg_t *srg, const char *s, size_t len);

/* Make room in the pointer tables for `more_values` values and `more_nodes`
 * nodes beyond the current counts (GENIE_ERR_NOMEM / GENIE_ERR_INVALID with a
 * message when the ids would run into GENIE_SRG_NONE). */
genie_status_t genie_srg_reserve(genie_srg_t *srg, uint32_t more_values, uint32_t more_nodes);

/* Shape rule shared by builder and decoder: genie_shape_problem (tensor.h):
 * 0 <= ndim <= GENIE_MAX_DIMS, every extent >= 0, the product of the extents
 * (a zero counted as 1) times elsize <= 2^62.  Returns NULL when fine, else a static
 * phrase ("has a negative extent", ...) for the caller's message. */
const char *genie_srg_shape_problem(genie_dtype_t dtype, int ndim, const int64_t *shape);

/* Names used by the JSON dump and error messages ("invalid" if out of range). */
const char *genie_srg_kind_name(genie_value_kind_t k);
const char *genie_srg_attr_tag_name(genie_attr_tag_t t);

#endif

/*
 * Operation identifiers (see ops.def for the list and the argument convention).
 */
#ifndef GENIE_OPS_H
#define GENIE_OPS_H

#include <stdint.h>

#define GENIE_OPF_VIEW 0x1u  /* outputs alias the first input's storage */

typedef enum genie_op {
#define GENIE_OP(id, aten, flags) GENIE_OP_##id,
#include "genie/ops.def"
#undef GENIE_OP
    GENIE_OP_COUNT
} genie_op_t;

/* ATen overload name ("addmm.default") of an op, or NULL if out of range. */
const char *genie_op_name(uint32_t op);

/* GENIE_OPF_* flags of an op (0 if out of range). */
uint32_t genie_op_flags(uint32_t op);

/* Number of ops that exist in SRG ops revision `revision` (0 if unknown). */
uint32_t genie_op_count_in_revision(unsigned revision);

/* Op for an ATen overload name, or -1 if the closed set does not have it. */
int genie_op_from_name(const char *aten_name);

#endif

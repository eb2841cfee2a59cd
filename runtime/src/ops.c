/*
 * Name and flag tables generated from ops.def.
 */
#include "genie/ops.h"
#include "genie/srg.h"

#include <string.h>

static const char *const op_names[GENIE_OP_COUNT] = {
#define GENIE_OP(id, aten, flags) [GENIE_OP_##id] = aten,
#include "genie/ops.def"
#undef GENIE_OP
};

static const uint32_t op_flags[GENIE_OP_COUNT] = {
#define GENIE_OP(id, aten, flags) [GENIE_OP_##id] = (flags),
#include "genie/ops.def"
#undef GENIE_OP
};

/* The op numbering is frozen into SRG revision 1; growing ops.def must bump
 * GENIE_SRG_OPS_REVISION (srg.h) together with this count. */
_Static_assert(GENIE_OP_COUNT == 98, "ops.def changed: bump GENIE_SRG_OPS_REVISION");

/* How many ops each ops revision has (ops.def is append-only). */
static const uint32_t ops_per_revision[] = { 0, 78, 89, 98 };
_Static_assert(sizeof(ops_per_revision) / sizeof(ops_per_revision[0]) == GENIE_SRG_OPS_REVISION + 1,
               "add the new revision's op count to ops_per_revision");

uint32_t genie_op_count_in_revision(unsigned revision)
{
    return revision <= GENIE_SRG_OPS_REVISION ? ops_per_revision[revision] : 0;
}

const char *genie_op_name(uint32_t op)
{
    return op < GENIE_OP_COUNT ? op_names[op] : NULL;
}

uint32_t genie_op_flags(uint32_t op)
{
    return op < GENIE_OP_COUNT ? op_flags[op] : 0;
}

int genie_op_from_name(const char *aten_name)
{
    for (int i = 0; i < GENIE_OP_COUNT; i++) {
        if (strcmp(op_names[i], aten_name) == 0) {
            return i;
        }
    }
    return -1;
}

/*
 * libFuzzer target: the phase-spec parser (runtime/src/phase_spec.c), the
 * text of srun --genie-phases, genie-launch --phases and
 * genie._C.parse_phases.  The entry point and its invariants are those of
 * fuzz_phase_spec.c (one definition for the CTest loop and for libFuzzer):
 * an accepted spec keeps every rule of genie/phase_spec.h and survives
 * format + re-parse unchanged; a refusal is one "genie: " line equal to
 * genie_last_error(), leaves the output alone and never overruns a small
 * error buffer.
 */
#define GENIE_LIBFUZZER 1
#include "fuzz_phase_spec.c"

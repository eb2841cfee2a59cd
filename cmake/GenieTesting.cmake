# Helpers that turn test sources into CTest tests.  Every test carries one of
# the labels  unit mpi slurm python fault fuzz bench gpu  so that
# `ctest -L <label>` selects a family.

# Environment every sanitized test runs with: stop at the first report and
# print where it came from.
set(GENIE_SANITIZE_TEST_ENV
  "ASAN_OPTIONS=abort_on_error=0:detect_leaks=1:strict_string_checks=1"
  "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")

# genie_test_name(<out-var> <dir> <source>): tests/unit/test_tensor.c gives
# unit_test_tensor; a stem that already starts with "<dir>_" is kept as is
# (tests/fuzz/fuzz_srg.c gives fuzz_srg).
function(genie_test_name out dir src)
  get_filename_component(stem "${src}" NAME_WE)
  if(stem MATCHES "^${dir}_")
    set(${out} "${stem}" PARENT_SCOPE)
  else()
    set(${out} "${dir}_${stem}" PARENT_SCOPE)
  endif()
endfunction()

# genie_add_c_test(<source> DIR <dir> LABELS <label>...
#                  [ARGS <arg>...] [TIMEOUT <s>] [FIXTURES_REQUIRED <f>...]
#                  [LIBS <target>...])
# Builds one executable from one C file, linked with genie_runtime, the wire
# codec genie_wire (when defined: transport-ucx is added before tests/), the
# SPANK plugin's slice-to-GPU mapping genie_spank_core, and cmocka, and registers it as a CTest test of the same name.  Tests may
# include the runtime's private headers (runtime/src) to test internals.
function(genie_add_c_test src)
  cmake_parse_arguments(PARSE_ARGV 1 T "" "DIR;TIMEOUT" "LABELS;ARGS;FIXTURES_REQUIRED;LIBS")
  genie_test_name(name "${T_DIR}" "${src}")
  add_executable(${name} "${src}")
  target_include_directories(${name} PRIVATE "${PROJECT_SOURCE_DIR}/runtime/src")
  target_link_libraries(${name} PRIVATE genie_runtime genie::cmocka ${T_LIBS})
  if(TARGET genie_wire)
    target_link_libraries(${name} PRIVATE genie_wire)
  endif()
  if(TARGET genie_spank_core)
    target_link_libraries(${name} PRIVATE genie_spank_core)
  endif()
  add_test(NAME ${name} COMMAND ${name} ${T_ARGS})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT})
  if(T_FIXTURES_REQUIRED)
    set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED "${T_FIXTURES_REQUIRED}")
  endif()
  if(GENIE_SANITIZE)
    set_tests_properties(${name} PROPERTIES ENVIRONMENT "${GENIE_SANITIZE_TEST_ENV}")
  endif()
endfunction()

# Exit status of a test that did not run because something it needs is
# missing; every test that can skip registers SKIP_RETURN_CODE with it, so
# that CTest lists it as "Skipped" (never as passed).
set(GENIE_SKIP_RETURN_CODE 77)

# genie_skip_test(<name> LABELS <label>... REASON <text>)
# Registers <name> as a test that prints "skipped: <text>" and exits with
# GENIE_SKIP_RETURN_CODE: where a test's dependency is missing (HDF5, MPI, a
# sanitized build, ...), it is still registered under its usual name and
# label, so that `ctest` and scripts/test report it as skipped, with why,
# instead of it vanishing.  The configure summary lists these by reason.
function(genie_skip_test name)
  cmake_parse_arguments(PARSE_ARGV 1 S "" "REASON" "LABELS")
  if(NOT S_REASON OR NOT S_LABELS OR S_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "genie_skip_test(${name}): give LABELS and one REASON string")
  endif()
  add_test(NAME ${name}
    COMMAND sh -c [[printf 'skipped: %s\n' "$1"; exit "$2"]] sh "${S_REASON}"
            ${GENIE_SKIP_RETURN_CODE})
  set_tests_properties(${name} PROPERTIES
    LABELS "${S_LABELS}" SKIP_RETURN_CODE ${GENIE_SKIP_RETURN_CODE})
  # Grouped by reason for the summary (cmake/GenieSummary.cmake).
  string(REPLACE ";" "," reason "${S_REASON}")
  string(MD5 key "${reason}")
  get_property(reasons GLOBAL PROPERTY GENIE_SKIP_REASONS)
  if(NOT reason IN_LIST reasons)
    set_property(GLOBAL APPEND PROPERTY GENIE_SKIP_REASONS "${reason}")
  endif()
  set_property(GLOBAL APPEND PROPERTY GENIE_SKIP_NAMES_${key} "${name}")
endfunction()

# Coverage-guided fuzzing with libFuzzer (tests/fuzz/lf_*.c, scripts/fuzz,
# scripts/fuzz-ci).
#
# GENIE_FUZZ=ON is meant for a build directory of its own, configured with
# clang (scripts/fuzz does it: build-fuzz/, CC=clang-14).  There every C
# target of the tree, the real libraries included, is compiled with
# -fsanitize=fuzzer-no-link,address,undefined, and each
# genie_fuzz_target(NAME lf_x ...) links -fsanitize=fuzzer into
# build-fuzz/fuzz/lf_x.
#
# In every other build (build/, build-asan/) the same sources are compiled by
# the usual compiler with a small main (tests/fuzz/lf_replay_main.c) into
# lf_x_replay, and the CTest test fuzz_replay_lf_x (label fuzz) runs each
# input of tests/fuzz/corpus/lf_x once: the corpora, regression inputs
# included, are replayed everywhere, with ASan+UBSan in build-asan/.

option(GENIE_FUZZ
  "libFuzzer build (clang only; every target gets -fsanitize=fuzzer-no-link,address,undefined)"
  OFF)

if(GENIE_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "genie: GENIE_FUZZ=ON needs clang (configure with CC=clang-14; "
                        "apt-get install clang-14 libclang-rt-14-dev), not ${CMAKE_C_COMPILER_ID}")
  endif()
  if(GENIE_SANITIZE)
    message(FATAL_ERROR "genie: GENIE_FUZZ=ON already sanitizes; leave GENIE_SANITIZE off")
  endif()
  set(GENIE_FUZZ_FLAGS
    -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
    -fno-sanitize-recover=undefined)
  add_compile_options("$<$<COMPILE_LANGUAGE:C>:${GENIE_FUZZ_FLAGS}>")
  # The tree silences some gcc-only warnings by name (#pragma GCC diagnostic
  # ignored "-Wformat-truncation"), which clang does not know.
  add_compile_options("$<$<COMPILE_LANGUAGE:C>:-Wno-unknown-warning-option>")
  add_link_options(-fsanitize=address,undefined)
  genie_summary_note("fuzz build: libFuzzer targets in ${CMAKE_BINARY_DIR}/fuzz (scripts/fuzz TARGET SECONDS)")
endif()

# The targets this configure defined, one "NAME" or "NAME SKIP reason" a
# line, for scripts/fuzz-ci: ${CMAKE_BINARY_DIR}/fuzz/targets.txt.
set(GENIE_FUZZ_LIST "${CMAKE_BINARY_DIR}/fuzz/targets.txt")
file(WRITE "${GENIE_FUZZ_LIST}" "")

# genie_fuzz_target(NAME <lf_name> SOURCES <file>... [LIBS <target>...])
# One libFuzzer target: its sources (relative to the calling directory)
# define LLVMFuzzerTestOneInput and call the real code; it is linked with
# genie_runtime (whose private headers runtime/src it may include) and LIBS.
# The seed corpus is tests/fuzz/corpus/<lf_name>/.
function(genie_fuzz_target)
  cmake_parse_arguments(PARSE_ARGV 0 F "" "NAME" "SOURCES;LIBS")
  if(NOT F_NAME MATCHES "^lf_[a-z0-9_]+$" OR NOT F_SOURCES)
    message(FATAL_ERROR "genie: genie_fuzz_target(NAME lf_<name> SOURCES ...) (got '${F_NAME}')")
  endif()
  set(_corpus "${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${F_NAME}")
  if(GENIE_FUZZ)
    set(_exe ${F_NAME})
    add_executable(${_exe} ${F_SOURCES})
    target_link_options(${_exe} PRIVATE -fsanitize=fuzzer)
    set_target_properties(${_exe} PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/fuzz")
  else()
    set(_exe ${F_NAME}_replay)
    add_executable(${_exe} ${F_SOURCES} "${PROJECT_SOURCE_DIR}/tests/fuzz/lf_replay_main.c")
    add_test(NAME fuzz_replay_${F_NAME} COMMAND ${_exe} "${_corpus}")
    set_tests_properties(fuzz_replay_${F_NAME} PROPERTIES LABELS fuzz TIMEOUT 300)
    if(GENIE_SANITIZE)
      set_tests_properties(fuzz_replay_${F_NAME} PROPERTIES ENVIRONMENT "${GENIE_SANITIZE_TEST_ENV}")
    endif()
  endif()
  target_include_directories(${_exe} PRIVATE "${PROJECT_SOURCE_DIR}/runtime/src")
  target_link_libraries(${_exe} PRIVATE genie_runtime ${F_LIBS})
  file(APPEND "${GENIE_FUZZ_LIST}" "${F_NAME}\n")
endfunction()

# genie_fuzz_skip(NAME <lf_name> REASON <text>): a target whose dependency
# is missing here.  It is still registered, as a skip that says why: the
# replay test exits 77 (SKIP_RETURN_CODE) with the reason, and
# scripts/fuzz-ci prints it in its table.
function(genie_fuzz_skip)
  cmake_parse_arguments(PARSE_ARGV 0 F "" "NAME;REASON" "")
  file(APPEND "${GENIE_FUZZ_LIST}" "${F_NAME} SKIP ${F_REASON}\n")
  if(NOT GENIE_FUZZ)
    add_test(NAME fuzz_replay_${F_NAME}
      COMMAND sh -c "echo 'skipped: ${F_NAME}: ${F_REASON}'; exit 77")
    set_tests_properties(fuzz_replay_${F_NAME} PROPERTIES LABELS fuzz SKIP_RETURN_CODE 77)
  endif()
  genie_summary_note("fuzz target ${F_NAME} skipped: ${F_REASON}")
endfunction()

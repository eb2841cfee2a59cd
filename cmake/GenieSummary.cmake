# The configure summary: every dependency check records one line here, and
# genie_print_summary() prints them all once configuring is done, so that a
# reader sees in one place what this build has and what it lacks.

define_property(GLOBAL PROPERTY GENIE_SUMMARY_REQUIRED
  BRIEF_DOCS "genie: summary lines for required dependencies"
  FULL_DOCS "One line per required dependency, printed by genie_print_summary().")
define_property(GLOBAL PROPERTY GENIE_SUMMARY_OPTIONAL
  BRIEF_DOCS "genie: summary lines for optional dependencies"
  FULL_DOCS "One line per optional dependency, printed by genie_print_summary().")
define_property(GLOBAL PROPERTY GENIE_SUMMARY_NOTES
  BRIEF_DOCS "genie: free-form notes for the summary"
  FULL_DOCS "Notes such as parts of the tree skipped in this configuration.")

# _genie_summary_line(<property> <name> <found> <detail>): <found> is a
# boolean, or the word DISABLED for a dependency switched off by an option.
function(_genie_summary_line prop name found detail)
  if(found STREQUAL "DISABLED")
    set(state "disabled")
  elseif(found)
    set(state "found")
  else()
    set(state "NOT found")
  endif()
  string(LENGTH "${name}" len)
  math(EXPR pad "26 - ${len}")
  if(pad LESS 1)
    set(pad 1)
  endif()
  string(REPEAT "." ${pad} dots)
  if(detail)
    # A ";" would split the line when it is appended to the list property.
    string(REPLACE ";" "," detail "${detail}")
    set(state "${state}: ${detail}")
  endif()
  set_property(GLOBAL APPEND PROPERTY ${prop} "${name} ${dots} ${state}")
endfunction()

# genie_summary_required(<name> <found> <detail>)
function(genie_summary_required name found detail)
  _genie_summary_line(GENIE_SUMMARY_REQUIRED "${name}" "${found}" "${detail}")
endfunction()

# genie_summary_optional(<name> <found> <detail>)
function(genie_summary_optional name found detail)
  _genie_summary_line(GENIE_SUMMARY_OPTIONAL "${name}" "${found}" "${detail}")
endfunction()

# genie_summary_note(<text>...): the pieces are joined into one line.
function(genie_summary_note)
  string(JOIN "" text ${ARGV})
  string(REPLACE ";" "," text "${text}")
  set_property(GLOBAL APPEND PROPERTY GENIE_SUMMARY_NOTES "${text}")
endfunction()

# genie_require(<found> <what> <debian-package>): stop configuring with one
# line that says what to install.  Called right after a required check.
function(genie_require found what package)
  if(NOT found)
    message(FATAL_ERROR "genie: ${what} not found — apt-get install ${package} "
      "(or run scripts/bootstrap, which installs every Debian package Genie needs)")
  endif()
endfunction()

function(genie_print_summary)
  get_property(req GLOBAL PROPERTY GENIE_SUMMARY_REQUIRED)
  get_property(opt GLOBAL PROPERTY GENIE_SUMMARY_OPTIONAL)
  get_property(notes GLOBAL PROPERTY GENIE_SUMMARY_NOTES)
  if(GENIE_SANITIZE)
    set(san "ON (ASan+UBSan)")
  else()
    set(san "OFF")
  endif()
  message(STATUS "")
  message(STATUS "genie ${PROJECT_VERSION} configuration summary")
  message(STATUS "  build type: ${CMAKE_BUILD_TYPE}   werror: ${GENIE_WERROR}   sanitize: ${san}")
  message(STATUS "  required:")
  foreach(line IN LISTS req)
    message(STATUS "    ${line}")
  endforeach()
  message(STATUS "  optional (detected and reported; later parts of Genie use them):")
  foreach(line IN LISTS opt)
    message(STATUS "    ${line}")
  endforeach()
  if(notes)
    message(STATUS "  notes:")
    foreach(line IN LISTS notes)
      message(STATUS "    ${line}")
    endforeach()
  endif()
  # Tests whose dependencies are missing here (genie_skip_test in
  # cmake/GenieTesting.cmake): registered, and reported by ctest as skipped.
  get_property(skip_reasons GLOBAL PROPERTY GENIE_SKIP_REASONS)
  if(skip_reasons)
    message(STATUS "  tests registered as skipped (ctest reports them as Skipped):")
    foreach(reason IN LISTS skip_reasons)
      string(MD5 key "${reason}")
      get_property(names GLOBAL PROPERTY GENIE_SKIP_NAMES_${key})
      list(LENGTH names n)
      string(JOIN ", " names ${names})
      message(STATUS "    ${n} skipped: ${reason}: ${names}")
    endforeach()
  else()
    message(STATUS "  tests registered as skipped: none (every test's dependencies were found)")
  endif()
  message(STATUS "")
endfunction()

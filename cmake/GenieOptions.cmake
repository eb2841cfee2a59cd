# User-facing options and the defaults that every build directory starts from.
#
# GENIE_WITH_CUDA is a tri-state rather than a bool because the common case is
# "use nvcc if this machine has one": AUTO never fails, ON fails loudly when
# CUDA is missing, OFF never looks.

option(GENIE_WERROR "Treat compiler warnings as errors in Genie's C targets" ON)
option(GENIE_SANITIZE
  "Build with AddressSanitizer + UndefinedBehaviorSanitizer (skips the Python extension and Python tests)"
  OFF)

set(GENIE_WITH_CUDA "AUTO" CACHE STRING "Build the CUDA backend (runtime/cuda): AUTO, ON or OFF")
set_property(CACHE GENIE_WITH_CUDA PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${GENIE_WITH_CUDA}" GENIE_WITH_CUDA)
if(NOT GENIE_WITH_CUDA MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "genie: GENIE_WITH_CUDA must be AUTO, ON or OFF (got '${GENIE_WITH_CUDA}')")
endif()

# The interpreter of the project's virtual environment runs the golden-data
# generator and the Python tests, and its headers build the extension.
set(GENIE_PYTHON "${CMAKE_SOURCE_DIR}/.venv/bin/python" CACHE FILEPATH
  "Python interpreter (normally the project's .venv, created by scripts/bootstrap)")

# Single-config generators get an optimised build with debug info unless told
# otherwise: the performance targets are measured on this build.
get_property(_genie_multi_config GLOBAL PROPERTY GENERATOR_IS_MULTI_CONFIG)
if(NOT _genie_multi_config AND NOT CMAKE_BUILD_TYPE)
  set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING "Build type" FORCE)
endif()

set(CMAKE_EXPORT_COMPILE_COMMANDS ON)

# Required dependencies: the C compiler, libm, OpenBLAS, cmocka and the
# project's Python (interpreter always; headers unless GENIE_SANITIZE).
#
# Each check records a summary line, and a missing one stops configuring with
# the Debian package that provides it.  Found libraries are wrapped in
# INTERFACE IMPORTED targets named genie::<dep> so that the rest of the tree
# links one name whatever way the library was found (pkg-config or a search).

include(CheckLanguage)
include(CheckSymbolExists)
include(CMakePushCheckState)

# --- C compiler --------------------------------------------------------------
# project() was called with LANGUAGES NONE so that a missing compiler ends
# in the same one-line message as every other missing dependency.
check_language(C)
genie_require("${CMAKE_C_COMPILER}" "a C compiler" "build-essential")
enable_language(C)
genie_summary_required("C compiler" TRUE
  "${CMAKE_C_COMPILER_ID} ${CMAKE_C_COMPILER_VERSION} (${CMAKE_C_COMPILER})")

find_package(PkgConfig QUIET)

# --- libm --------------------------------------------------------------------
find_library(GENIE_LIBM m)
genie_require("${GENIE_LIBM}" "libm" "libc6-dev")
add_library(genie::m INTERFACE IMPORTED)
target_link_libraries(genie::m INTERFACE "${GENIE_LIBM}")

# --- OpenBLAS (cblas.h) ------------------------------------------------------
# Debian installs OpenBLAS under an alternatives-managed subdirectory
# (openblas-pthread or openblas-openmp); its openblas.pc knows which one.
if(PKG_CONFIG_FOUND)
  pkg_check_modules(GENIE_OPENBLAS QUIET IMPORTED_TARGET openblas)
endif()
if(GENIE_OPENBLAS_FOUND)
  find_path(GENIE_CBLAS_INCLUDE_DIR cblas.h HINTS ${GENIE_OPENBLAS_INCLUDE_DIRS} NO_DEFAULT_PATH)
  set(_genie_blas_link PkgConfig::GENIE_OPENBLAS)
  set(_genie_blas_how "pkg-config openblas ${GENIE_OPENBLAS_VERSION}")
else()
  set(_genie_blas_suffixes openblas-pthread openblas-openmp openblas-serial openblas)
  find_path(GENIE_CBLAS_INCLUDE_DIR cblas.h
    PATH_SUFFIXES ${_genie_blas_suffixes} x86_64-linux-gnu/openblas-pthread
    aarch64-linux-gnu/openblas-pthread)
  find_library(GENIE_OPENBLAS_LIBRARY openblas PATH_SUFFIXES ${_genie_blas_suffixes})
  set(_genie_blas_link "${GENIE_OPENBLAS_LIBRARY}")
  set(_genie_blas_how "${GENIE_OPENBLAS_LIBRARY}")
endif()
if(GENIE_CBLAS_INCLUDE_DIR AND _genie_blas_link)
  cmake_push_check_state(RESET)
  set(CMAKE_REQUIRED_QUIET ON)
  set(CMAKE_REQUIRED_INCLUDES "${GENIE_CBLAS_INCLUDE_DIR}")
  set(CMAKE_REQUIRED_LIBRARIES ${_genie_blas_link})
  check_symbol_exists(cblas_sgemm cblas.h GENIE_HAVE_CBLAS_SGEMM)
  cmake_pop_check_state()
endif()
genie_require("${GENIE_HAVE_CBLAS_SGEMM}" "OpenBLAS (cblas.h, cblas_sgemm)" "libopenblas-dev")
add_library(genie::blas INTERFACE IMPORTED)
target_include_directories(genie::blas INTERFACE "${GENIE_CBLAS_INCLUDE_DIR}")
target_link_libraries(genie::blas INTERFACE ${_genie_blas_link})
genie_summary_required("BLAS" TRUE "OpenBLAS, ${_genie_blas_how}")

# --- cmocka ------------------------------------------------------------------
if(PKG_CONFIG_FOUND)
  pkg_check_modules(GENIE_CMOCKA QUIET IMPORTED_TARGET cmocka)
endif()
add_library(genie::cmocka INTERFACE IMPORTED)
if(GENIE_CMOCKA_FOUND)
  target_link_libraries(genie::cmocka INTERFACE PkgConfig::GENIE_CMOCKA)
  set(_genie_cmocka_how "pkg-config cmocka ${GENIE_CMOCKA_VERSION}")
else()
  find_path(GENIE_CMOCKA_INCLUDE_DIR cmocka.h)
  find_library(GENIE_CMOCKA_LIBRARY cmocka)
  genie_require("${GENIE_CMOCKA_INCLUDE_DIR}" "cmocka (cmocka.h)" "libcmocka-dev")
  genie_require("${GENIE_CMOCKA_LIBRARY}" "cmocka (libcmocka)" "libcmocka-dev")
  target_include_directories(genie::cmocka INTERFACE "${GENIE_CMOCKA_INCLUDE_DIR}")
  target_link_libraries(genie::cmocka INTERFACE "${GENIE_CMOCKA_LIBRARY}")
  set(_genie_cmocka_how "${GENIE_CMOCKA_LIBRARY}")
endif()
genie_summary_required("cmocka" TRUE "${_genie_cmocka_how}")

# --- Python (the project's venv) ---------------------------------------------
# The venv's interpreter runs gen_golden.py and the pytest files; its headers
# (those of the interpreter the venv was made from) build genie._C.  Under
# GENIE_SANITIZE the extension is not built, so only the interpreter is needed.
if(NOT EXISTS "${GENIE_PYTHON}")
  message(FATAL_ERROR "genie: Python venv not found at ${GENIE_PYTHON} — run scripts/bootstrap "
    "(it creates .venv; with Debian's own python3 also apt-get install python3-venv python3-dev)")
endif()
set(Python3_EXECUTABLE "${GENIE_PYTHON}")
if(GENIE_SANITIZE)
  find_package(Python3 3.8 COMPONENTS Interpreter)
else()
  find_package(Python3 3.8 COMPONENTS Interpreter Development.Module)
endif()
genie_require("${Python3_Interpreter_FOUND}" "Python interpreter ${GENIE_PYTHON}" "python3-venv")
if(NOT GENIE_SANITIZE)
  genie_require("${Python3_Development.Module_FOUND}" "Python headers (Python.h) for ${GENIE_PYTHON}"
    "python3-dev")
endif()

# Which of the venv's packages are there, for the summary: reading metadata is
# instant, importing torch is not.
execute_process(
  COMMAND "${GENIE_PYTHON}" -c [=[
import importlib.metadata as m
out = []
for name in ("torch", "transformers", "numpy", "pytest", "h5py"):
    try:
        out.append(name + " " + m.version(name))
    except m.PackageNotFoundError:
        out.append(name + " MISSING")
print(", ".join(out))
]=]
  OUTPUT_VARIABLE _genie_py_pkgs OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE _genie_py_rc)
if(NOT _genie_py_rc EQUAL 0)
  set(_genie_py_pkgs "could not list packages")
endif()
if(GENIE_SANITIZE)
  set(_genie_py_dev "headers not needed under GENIE_SANITIZE")
else()
  set(_genie_py_dev "headers ${Python3_INCLUDE_DIRS}, SOABI ${Python3_SOABI}")
endif()
genie_summary_required("Python3 (venv)" TRUE "${Python3_VERSION} ${GENIE_PYTHON}, ${_genie_py_dev}")
genie_summary_required("  venv packages" TRUE "${_genie_py_pkgs}")
if(_genie_py_pkgs MATCHES "MISSING")
  message(WARNING "genie: the venv lacks packages the tests need (${_genie_py_pkgs}) — run scripts/bootstrap")
endif()

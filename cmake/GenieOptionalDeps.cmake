# Optional dependencies: detected and reported now, used by later parts of
# Genie (transport-ucx, checkpoint, launcher, spank-plugin, oneDNN kernels).
#
# Each one found becomes an INTERFACE IMPORTED target genie::<dep> and sets
# GENIE_HAVE_<DEP> to TRUE; nothing here fails the configure.  OpenMP differs
# only in that the runtime already links it when present.  A missing one is
# reported with the Debian package that provides it.

# genie_optional(<name> <found> <detail-if-found> <debian-package>)
function(genie_optional name found detail package)
  if(found)
    genie_summary_optional("${name}" TRUE "${detail}")
  else()
    genie_summary_optional("${name}" FALSE "apt-get install ${package}")
  endif()
endfunction()

# --- OpenMP ------------------------------------------------------------------
find_package(OpenMP COMPONENTS C QUIET)
set(GENIE_HAVE_OPENMP FALSE)
if(OpenMP_C_FOUND)
  set(GENIE_HAVE_OPENMP TRUE)
endif()
genie_optional("OpenMP" "${GENIE_HAVE_OPENMP}"
  "OpenMP ${OpenMP_C_VERSION} (${OpenMP_C_FLAGS}), linked into genie_runtime" "libgomp1")

# --- MPI (launcher: genie-executor ranks, genie-launch) ----------------------
set(MPI_DETERMINE_LIBRARY_VERSION TRUE)
find_package(MPI COMPONENTS C QUIET)
set(GENIE_HAVE_MPI FALSE)
if(MPI_C_FOUND)
  set(GENIE_HAVE_MPI TRUE)
  add_library(genie::mpi INTERFACE IMPORTED)
  target_link_libraries(genie::mpi INTERFACE MPI::MPI_C)
endif()
# "Open MPI v4.1.4, package: ..., repo rev: ..." -> "Open MPI v4.1.4"
string(REGEX REPLACE ",.*" "" _genie_mpi_lib "${MPI_C_LIBRARY_VERSION_STRING}")
genie_optional("MPI" "${GENIE_HAVE_MPI}"
  "MPI ${MPI_C_VERSION} (${_genie_mpi_lib}), mpiexec ${MPIEXEC_EXECUTABLE}"
  "libopenmpi-dev openmpi-bin")

# --- UCX (transport-ucx) -----------------------------------------------------
set(GENIE_HAVE_UCX FALSE)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(GENIE_UCX QUIET IMPORTED_TARGET ucx)
  if(GENIE_UCX_FOUND)
    set(GENIE_HAVE_UCX TRUE)
    add_library(genie::ucx INTERFACE IMPORTED)
    target_link_libraries(genie::ucx INTERFACE PkgConfig::GENIE_UCX)
  endif()
endif()
find_program(GENIE_UCX_PERFTEST ucx_perftest)
if(GENIE_UCX_PERFTEST)
  set(_genie_perftest "ucx_perftest ${GENIE_UCX_PERFTEST}")
else()
  set(_genie_perftest "ucx_perftest not found (apt-get install ucx-utils)")
endif()
genie_optional("UCX" "${GENIE_HAVE_UCX}" "pkg-config ucx ${GENIE_UCX_VERSION}, ${_genie_perftest}"
  "libucx-dev ucx-utils")

# --- HDF5 (checkpoint) -------------------------------------------------------
find_package(HDF5 COMPONENTS C QUIET)
set(GENIE_HAVE_HDF5 FALSE)
if(HDF5_FOUND AND TARGET hdf5::hdf5)
  set(GENIE_HAVE_HDF5 TRUE)
  add_library(genie::hdf5 INTERFACE IMPORTED)
  target_link_libraries(genie::hdf5 INTERFACE hdf5::hdf5)
elseif(HDF5_FOUND)
  set(GENIE_HAVE_HDF5 TRUE)
  add_library(genie::hdf5 INTERFACE IMPORTED)
  target_include_directories(genie::hdf5 INTERFACE ${HDF5_C_INCLUDE_DIRS})
  target_compile_definitions(genie::hdf5 INTERFACE ${HDF5_C_DEFINITIONS})
  target_link_libraries(genie::hdf5 INTERFACE ${HDF5_C_LIBRARIES})
endif()
set(_genie_hdf5_kind "serial")
if(HDF5_IS_PARALLEL)
  set(_genie_hdf5_kind "parallel")
endif()
genie_optional("HDF5 (C)" "${GENIE_HAVE_HDF5}" "HDF5 ${HDF5_VERSION} (${_genie_hdf5_kind})"
  "libhdf5-dev hdf5-tools")

# --- libconfig (genie.conf: launcher, spank-plugin) --------------------------
set(GENIE_HAVE_LIBCONFIG FALSE)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(GENIE_LIBCONFIG QUIET IMPORTED_TARGET libconfig)
  if(GENIE_LIBCONFIG_FOUND)
    set(GENIE_HAVE_LIBCONFIG TRUE)
    add_library(genie::libconfig INTERFACE IMPORTED)
    target_link_libraries(genie::libconfig INTERFACE PkgConfig::GENIE_LIBCONFIG)
  endif()
endif()
genie_optional("libconfig" "${GENIE_HAVE_LIBCONFIG}" "pkg-config libconfig ${GENIE_LIBCONFIG_VERSION}"
  "libconfig-dev")

# --- Slurm SPANK headers (spank-plugin) --------------------------------------
# Debian 12 ships slurm/spank.h in libslurm-dev; slurm-wlm-plugins-dev is only
# a transitional package.
find_path(GENIE_SLURM_INCLUDE_DIR slurm/spank.h)
set(GENIE_HAVE_SLURM FALSE)
set(_genie_slurm_version "")
if(GENIE_SLURM_INCLUDE_DIR)
  set(GENIE_HAVE_SLURM TRUE)
  add_library(genie::slurm INTERFACE IMPORTED)
  target_include_directories(genie::slurm INTERFACE "${GENIE_SLURM_INCLUDE_DIR}")
  if(EXISTS "${GENIE_SLURM_INCLUDE_DIR}/slurm/slurm_version.h")
    # "#define SLURM_VERSION_NUMBER 0x160508" is 22.05.8
    file(STRINGS "${GENIE_SLURM_INCLUDE_DIR}/slurm/slurm_version.h" _genie_slurm_line
      REGEX "#define SLURM_VERSION_NUMBER 0x[0-9a-fA-F]+")
    if(_genie_slurm_line MATCHES "0x([0-9a-fA-F][0-9a-fA-F])([0-9a-fA-F][0-9a-fA-F])([0-9a-fA-F][0-9a-fA-F])")
      math(EXPR _genie_sv1 "0x${CMAKE_MATCH_1}")
      math(EXPR _genie_sv2 "0x${CMAKE_MATCH_2}")
      math(EXPR _genie_sv3 "0x${CMAKE_MATCH_3}")
      if(_genie_sv2 LESS 10)
        set(_genie_sv2 "0${_genie_sv2}")  # Slurm writes 22.05, not 22.5
      endif()
      set(_genie_slurm_version "${_genie_sv1}.${_genie_sv2}.${_genie_sv3}")
    endif()
  endif()
endif()
find_program(GENIE_SRUN srun)
genie_optional("Slurm (slurm/spank.h)" "${GENIE_HAVE_SLURM}"
  "Slurm ${_genie_slurm_version} ${GENIE_SLURM_INCLUDE_DIR}/slurm/spank.h, srun ${GENIE_SRUN}"
  "libslurm-dev slurm-wlm")

# --- oneDNN (libdnnl; CPU kernels) -------------------------------------------
find_path(GENIE_DNNL_INCLUDE_DIR dnnl.h PATH_SUFFIXES oneapi/dnnl)
find_library(GENIE_DNNL_LIBRARY dnnl)
set(GENIE_HAVE_DNNL FALSE)
set(_genie_dnnl_version "")
if(GENIE_DNNL_INCLUDE_DIR AND GENIE_DNNL_LIBRARY)
  set(GENIE_HAVE_DNNL TRUE)
  add_library(genie::dnnl INTERFACE IMPORTED)
  target_include_directories(genie::dnnl INTERFACE "${GENIE_DNNL_INCLUDE_DIR}")
  target_link_libraries(genie::dnnl INTERFACE "${GENIE_DNNL_LIBRARY}")
  foreach(_genie_dnnl_hdr "${GENIE_DNNL_INCLUDE_DIR}/oneapi/dnnl/dnnl_version.h"
                          "${GENIE_DNNL_INCLUDE_DIR}/dnnl_version.h")
    if(EXISTS "${_genie_dnnl_hdr}" AND NOT _genie_dnnl_version)
      file(STRINGS "${_genie_dnnl_hdr}" _genie_dnnl_lines REGEX "#define DNNL_VERSION_(MAJOR|MINOR|PATCH) ")
      string(REGEX REPLACE "[^;]*DNNL_VERSION_[A-Z]+ ([0-9]+)" "\\1" _genie_dnnl_version "${_genie_dnnl_lines}")
      string(REPLACE ";" "." _genie_dnnl_version "${_genie_dnnl_version}")
    endif()
  endforeach()
endif()
genie_optional("oneDNN (libdnnl)" "${GENIE_HAVE_DNNL}" "oneDNN ${_genie_dnnl_version} ${GENIE_DNNL_LIBRARY}"
  "libdnnl-dev")

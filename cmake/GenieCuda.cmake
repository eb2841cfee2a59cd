# CUDA detection for the optional CUDA backend (runtime/cuda/*.cu, target
# genie_cuda).  GENIE_WITH_CUDA=AUTO enables the CUDA language only when a
# working nvcc is found, ON insists on it, OFF skips the check.
#
# Sets GENIE_HAVE_CUDA, and GENIE_HAVE_CUBLAS with target genie::cublas.
# cuBLAS is looked for in the toolkit first, then in the venv, where the PyPI
# wheel nvidia-cublas puts it (nvidia/cu13/lib) — the toolkit on these
# machines is assembled from such wheels and may lack it.

set(GENIE_HAVE_CUDA FALSE)
set(GENIE_HAVE_CUBLAS FALSE)

if(NOT GENIE_WITH_CUDA STREQUAL "OFF")
  # check_language() looks for nvcc on PATH and in $CUDACXX; the standard
  # toolkit location is often not on PATH.
  find_program(_genie_nvcc_on_path nvcc)
  if(NOT _genie_nvcc_on_path AND NOT DEFINED ENV{CUDACXX} AND EXISTS "/usr/local/cuda/bin/nvcc")
    set(ENV{CUDACXX} "/usr/local/cuda/bin/nvcc")
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # The lent GPUs are Hopper (sm_90); Ampere (sm_80) is still common on
    # clusters.  CUDA 13 supports nothing older than sm_75.
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES "80;90" CACHE STRING "CUDA architectures to build for")
    endif()
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit QUIET)
    if(CUDAToolkit_FOUND)
      set(GENIE_HAVE_CUDA TRUE)
    endif()
  endif()
  if(GENIE_WITH_CUDA STREQUAL "ON" AND NOT GENIE_HAVE_CUDA)
    message(FATAL_ERROR "genie: GENIE_WITH_CUDA=ON but no working CUDA toolkit (nvcc + cudart) was found "
      "— install the CUDA toolkit in /usr/local/cuda, or configure with -DGENIE_WITH_CUDA=AUTO")
  endif()
endif()

if(GENIE_HAVE_CUDA)
  if(TARGET CUDA::cublas)
    set(GENIE_HAVE_CUBLAS TRUE)
    add_library(genie::cublas INTERFACE IMPORTED)
    target_link_libraries(genie::cublas INTERFACE CUDA::cublas)
    set(_genie_cublas_where "toolkit")
  else()
    find_path(GENIE_CUBLAS_INCLUDE_DIR cublas_v2.h
      HINTS "${Python3_SITELIB}/nvidia/cu13/include" "${Python3_SITELIB}/nvidia/cublas/include"
      NO_DEFAULT_PATH)
    find_library(GENIE_CUBLAS_LIBRARY NAMES cublas libcublas.so.13 libcublas.so.12
      HINTS "${Python3_SITELIB}/nvidia/cu13/lib" "${Python3_SITELIB}/nvidia/cublas/lib"
      NO_DEFAULT_PATH)
    if(GENIE_CUBLAS_INCLUDE_DIR AND GENIE_CUBLAS_LIBRARY)
      set(GENIE_HAVE_CUBLAS TRUE)
      add_library(genie::cublas INTERFACE IMPORTED)
      target_include_directories(genie::cublas INTERFACE "${GENIE_CUBLAS_INCLUDE_DIR}")
      target_link_libraries(genie::cublas INTERFACE "${GENIE_CUBLAS_LIBRARY}")
      set(_genie_cublas_where "${GENIE_CUBLAS_LIBRARY}")
    endif()
  endif()
  if(GENIE_HAVE_CUBLAS)
    set(_genie_cublas "cuBLAS ${_genie_cublas_where}")
  else()
    set(_genie_cublas "cuBLAS NOT found (.venv/bin/pip install nvidia-cublas)")
  endif()
  genie_summary_optional("CUDA (nvcc, cuBLAS)" TRUE
    "nvcc ${CMAKE_CUDA_COMPILER_VERSION} ${CMAKE_CUDA_COMPILER}, archs ${CMAKE_CUDA_ARCHITECTURES}, ${_genie_cublas}")
elseif(GENIE_WITH_CUDA STREQUAL "OFF")
  genie_summary_optional("CUDA (nvcc, cuBLAS)" DISABLED "GENIE_WITH_CUDA=OFF")
else()
  genie_summary_optional("CUDA (nvcc, cuBLAS)" FALSE "no working nvcc (CUDA toolkit in /usr/local/cuda)")
endif()

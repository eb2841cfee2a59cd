# Language level, warnings and sanitizers, applied to every C target in the tree.
#
# All targets here are Genie's own, so the flags are set directory-wide rather
# than per target; CUDA sources get none of them (nvcc has its own dialect).

set(CMAKE_C_STANDARD 11)
set(CMAKE_C_STANDARD_REQUIRED ON)
set(CMAKE_C_EXTENSIONS OFF)

# posix_memalign, clock_gettime, strdup, ... are POSIX/GNU, not ISO C11.
add_compile_definitions(_GNU_SOURCE)

add_compile_options("$<$<COMPILE_LANGUAGE:C>:-Wall;-Wextra>")
if(GENIE_WERROR)
  add_compile_options("$<$<COMPILE_LANGUAGE:C>:-Werror>")
endif()

if(GENIE_SANITIZE)
  set(GENIE_SANITIZE_FLAGS
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_compile_options("$<$<COMPILE_LANGUAGE:C>:${GENIE_SANITIZE_FLAGS}>")
  add_link_options(${GENIE_SANITIZE_FLAGS})
endif()

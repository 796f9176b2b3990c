# Build options and per-target flag helpers (targets, not global flags).
option(BOTTLENECK_PCH "Precompile the LibTorch headers" ON)
set(BOTTLENECK_SANITIZE "" CACHE STRING "Comma-separated sanitizers, e.g. address,undefined")

function(bottleneck_apply_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
endfunction()

function(bottleneck_apply_sanitizers target)
  if(BOTTLENECK_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${BOTTLENECK_SANITIZE} -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${BOTTLENECK_SANITIZE})
    # GCC's flow analysis loses track of initialisation in the instrumented code and then
    # reports ~130 -Wmaybe-uninitialized false positives from inside <regex> (libstdc++'s
    # _Executor), burying real warnings; the ordinary build keeps the check. Clang has no such
    # warning.
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
    endif()
  endif()
endfunction()

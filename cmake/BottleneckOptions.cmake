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
  endif()
endfunction()

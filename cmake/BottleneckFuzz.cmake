# libFuzzer targets under tests/fuzz, off by default: they need clang, and CI does not fuzz.
# scripts/fuzz.sh configures a separate build with them.
option(BOTTLENECK_FUZZ "Build the libFuzzer targets in tests/fuzz (clang only)" OFF)
if(BOTTLENECK_FUZZ)
  add_subdirectory("${PROJECT_SOURCE_DIR}/tests/fuzz" "${PROJECT_BINARY_DIR}/fuzz")
endif()

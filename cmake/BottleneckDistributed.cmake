# Data-parallel training (src/distributed/process_group.cc) on LibTorch's c10d: Gloo on the CPU,
# NCCL with a CUDA LibTorch. c10d's Gloo header includes Gloo's own headers, which Debian ships
# apart from libtorch-dev (libgloo-dev); without them the build still succeeds and a run that asks
# for several processes is refused with a message saying so.
#
# The defines go on process_group.cc alone: on the whole target they would change every file's
# command line and rebuild the library (and the c10d headers cost seconds per file that includes
# them). USE_C10D_GLOO / USE_C10D_NCCL are what c10d's own headers test before declaring the
# backends.
set(BOTTLENECK_DISTRIBUTED_SOURCE "${CMAKE_CURRENT_SOURCE_DIR}/src/distributed/process_group.cc")
find_path(BOTTLENECK_C10D_INCLUDE torch/csrc/distributed/c10d/ProcessGroupGloo.hpp HINTS ${TORCH_INCLUDE_DIRS})
find_path(BOTTLENECK_GLOO_INCLUDE gloo/algorithm.h HINTS ${TORCH_INCLUDE_DIRS})
set(BOTTLENECK_DISTRIBUTED_DEFINES "")
if(BOTTLENECK_C10D_INCLUDE AND BOTTLENECK_GLOO_INCLUDE)
  list(APPEND BOTTLENECK_DISTRIBUTED_DEFINES BOTTLENECK_HAVE_GLOO=1 USE_C10D_GLOO=1)
  # Debian's libtorch_cpu links libgloo.so; Gloo's inline code in the headers needs it on our
  # link line too. A LibTorch that carries Gloo inside itself has no separate library.
  find_library(BOTTLENECK_GLOO_LIBRARY gloo)
  if(BOTTLENECK_GLOO_LIBRARY)
    target_link_libraries(bottleneck_core PRIVATE "${BOTTLENECK_GLOO_LIBRARY}")
  endif()
  message(STATUS "Distributed training: Gloo (c10d headers in ${BOTTLENECK_C10D_INCLUDE}, Gloo's in ${BOTTLENECK_GLOO_INCLUDE})")
else()
  message(STATUS "Distributed training: off (no Gloo headers; Debian: apt-get install libgloo-dev)")
endif()
# A CUDA LibTorch: one process per GPU over NCCL. c10d's NCCL header includes <nccl.h>, which
# LibTorch downloads do not carry (the CUDA toolkit's or libnccl-dev's does).
if(TORCH_CUDA_LIBRARIES AND BOTTLENECK_C10D_INCLUDE AND
   EXISTS "${BOTTLENECK_C10D_INCLUDE}/torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp")
  find_path(BOTTLENECK_NCCL_INCLUDE nccl.h HINTS ${TORCH_INCLUDE_DIRS} ${CUDAToolkit_INCLUDE_DIRS}
            "${CUDA_TOOLKIT_ROOT_DIR}/include" ENV NCCL_ROOT PATH_SUFFIXES include)
  if(BOTTLENECK_NCCL_INCLUDE)
    list(APPEND BOTTLENECK_DISTRIBUTED_DEFINES BOTTLENECK_HAVE_NCCL=1 USE_C10D_NCCL=1)
    set_property(SOURCE "${BOTTLENECK_DISTRIBUTED_SOURCE}" APPEND PROPERTY INCLUDE_DIRECTORIES "${BOTTLENECK_NCCL_INCLUDE}")
    message(STATUS "Distributed training: NCCL (CUDA LibTorch; nccl.h in ${BOTTLENECK_NCCL_INCLUDE})")
  else()
    message(STATUS "Distributed training: no NCCL (CUDA LibTorch, but no nccl.h: install NCCL's headers or set NCCL_ROOT); several processes on GPUs are refused")
  endif()
endif()
if(BOTTLENECK_DISTRIBUTED_DEFINES)
  set_source_files_properties("${BOTTLENECK_DISTRIBUTED_SOURCE}" PROPERTIES
    COMPILE_DEFINITIONS "${BOTTLENECK_DISTRIBUTED_DEFINES}")
endif()

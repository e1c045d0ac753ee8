# ctest driver (cmake -P): configure, build and run one consumer project out of tree.
#
# Inputs (-D): CONSUMER_SOURCE_DIR, CONSUMER_BINARY_DIR, GENERATOR, MAKE_PROGRAM, CXX_COMPILER, BUILD_TYPE,
# CONSUMER_ARGS (extra -D arguments for the consumer, separated by '|'), optional PKG_CONFIG_PATH.
cmake_minimum_required(VERSION 3.16)

foreach(input CONSUMER_SOURCE_DIR CONSUMER_BINARY_DIR GENERATOR CXX_COMPILER BUILD_TYPE)
  if(NOT DEFINED ${input})
    message(FATAL_ERROR "run_consumer.cmake: ${input} is not set")
  endif()
endforeach()

cmake_minimum_required(VERSION 3.16)

function(run_step description)
  message(STATUS "${description}: ${ARGN}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "${description} failed (${result}):\n${output}")
  endif()
  set(step_output "${output}" PARENT_SCOPE)
endfunction()

if(DEFINED PKG_CONFIG_PATH)
  set(ENV{PKG_CONFIG_PATH} "${PKG_CONFIG_PATH}")
endif()

# Start from nothing so a stale cache can never make a broken package look fine.
file(REMOVE_RECURSE "${CONSUMER_BINARY_DIR}")

string(REPLACE "|" ";" consumer_args "${CONSUMER_ARGS}")
set(configure_args -S "${CONSUMER_SOURCE_DIR}" -B "${CONSUMER_BINARY_DIR}" -G "${GENERATOR}"
    "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
if(MAKE_PROGRAM)
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
run_step("configure consumer" "${CMAKE_COMMAND}" ${configure_args} ${consumer_args})
run_step("build consumer" "${CMAKE_COMMAND}" --build "${CONSUMER_BINARY_DIR}" --config "${BUILD_TYPE}")

set(program "${CONSUMER_BINARY_DIR}/alibi_consumer")
if(NOT EXISTS "${program}")
  set(program "${CONSUMER_BINARY_DIR}/${BUILD_TYPE}/alibi_consumer")  # multi-config generators
endif()
run_step("run consumer" "${program}")
message("${step_output}")
if(NOT step_output MATCHES "alibi isa: (scalar|avx2|avx512)\n" OR NOT step_output MATCHES "attention ok")
  message(FATAL_ERROR "consumer output lacks the ISA line or the attention check")
endif()

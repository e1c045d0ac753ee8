# Configures, builds and runs the dispatch check (this directory as a standalone project) with another
# compiler: cmake -DSOURCE_DIR=... -DBINARY_DIR=... -DCXX_COMPILER=... -DGENERATOR=... -P run_with_compiler.cmake
foreach(step
    "${CMAKE_COMMAND};-S;${SOURCE_DIR};-B;${BINARY_DIR};-G;${GENERATOR};-DCMAKE_CXX_COMPILER=${CXX_COMPILER};-DCMAKE_BUILD_TYPE=Release"
    "${CMAKE_COMMAND};--build;${BINARY_DIR};-j2"
    "${CMAKE_CTEST_COMMAND};--test-dir;${BINARY_DIR};--output-on-failure")
  execute_process(COMMAND ${step} RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "failed (${result}): ${step}")
  endif()
endforeach()

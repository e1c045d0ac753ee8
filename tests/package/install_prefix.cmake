# ctest driver (cmake -P): install the alibi build tree into a fresh prefix and check what landed there.
#
# Inputs (-D): ALIBI_BINARY_DIR, ALIBI_SOURCE_DIR, PREFIX, BUILD_TYPE, EXPECTED_VERSION.
cmake_minimum_required(VERSION 3.16)

file(REMOVE_RECURSE "${PREFIX}")
execute_process(
  COMMAND "${CMAKE_COMMAND}" --install "${ALIBI_BINARY_DIR}" --prefix "${PREFIX}" --config "${BUILD_TYPE}"
  RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${result}):\n${output}")
endif()

cmake_minimum_required(VERSION 3.16)

set(missing "")
foreach(file share/cmake/alibi/alibiConfig.cmake share/cmake/alibi/alibiConfigVersion.cmake
             share/cmake/alibi/alibiTargets.cmake share/pkgconfig/alibi.pc)
  if(NOT EXISTS "${PREFIX}/${file}")
    list(APPEND missing "${file}")
  endif()
endforeach()
# Every file of the checkout's include/alibi.
file(GLOB_RECURSE source_headers RELATIVE "${ALIBI_SOURCE_DIR}/include" "${ALIBI_SOURCE_DIR}/include/alibi/*")
file(GLOB_RECURSE installed_headers RELATIVE "${PREFIX}/include" "${PREFIX}/include/alibi/*")
foreach(header IN LISTS source_headers)
  if(NOT header IN_LIST installed_headers)
    list(APPEND missing "include/${header}")
  endif()
endforeach()
if(missing)
  message(FATAL_ERROR "not installed: ${missing}")
endif()
# One version everywhere: CMake project, version.hpp, and (checked by the consumers) the package files.
file(STRINGS "${PREFIX}/include/alibi/version.hpp" version_line REGEX "#define ALIBI_VERSION_STRING ")
if(NOT version_line MATCHES "\"${EXPECTED_VERSION}\"")
  message(FATAL_ERROR "installed version.hpp says '${version_line}', the CMake project is ${EXPECTED_VERSION}")
endif()
message(STATUS "installed alibi ${EXPECTED_VERSION} into ${PREFIX}")

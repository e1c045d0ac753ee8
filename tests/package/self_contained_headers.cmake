# Header self-containment: one generated translation unit per public header, compiled once per ISA flag
# set (and once without exceptions), so a header that leans on something its includer happened to include
# first breaks the build. Each header is included twice (include guard) and the TUs of one ISA are linked into one program, which
# also catches a non-inline definition in a header (multiple definition at link time).
file(GLOB_RECURSE alibi_public_headers CONFIGURE_DEPENDS RELATIVE "${PROJECT_SOURCE_DIR}/include"
     "${PROJECT_SOURCE_DIR}/include/alibi/*.hpp")
list(SORT alibi_public_headers)

find_package(Eigen3 3.4 QUIET NO_MODULE)
if(NOT Eigen3_FOUND)
  list(REMOVE_ITEM alibi_public_headers alibi/eigen.hpp)
endif()

# Variants: every ISA flag set, plus the scalar build without exceptions (bad input then aborts with a
# message instead of throwing: detail/config.hpp, ALIBI_HAS_EXCEPTIONS).
set(ALIBI_FLAGS_scalar_no_exceptions -fno-exceptions)
foreach(isa IN LISTS ALIBI_ISAS ITEMS scalar_no_exceptions)
  set(sources "")
  foreach(ALIBI_HEADER IN LISTS alibi_public_headers)
    string(MAKE_C_IDENTIFIER "${ALIBI_HEADER}" tu_name)
    set(tu "${CMAKE_CURRENT_BINARY_DIR}/self_contained/${isa}/${tu_name}.cpp")
    configure_file("${CMAKE_CURRENT_SOURCE_DIR}/header_tu.cpp.in" "${tu}" @ONLY)
    list(APPEND sources "${tu}")
  endforeach()
  add_executable(alibi_self_contained_headers_${isa} ${sources} "${CMAKE_CURRENT_SOURCE_DIR}/header_tu_main.cpp")
  target_link_libraries(alibi_self_contained_headers_${isa} PRIVATE alibi::alibi)
  target_compile_options(alibi_self_contained_headers_${isa} PRIVATE ${ALIBI_FLAGS_${isa}})
  if(Eigen3_FOUND)
    target_link_libraries(alibi_self_contained_headers_${isa} PRIVATE Eigen3::Eigen)
  endif()
endforeach()

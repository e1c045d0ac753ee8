# Install rules and package files for alibi::alibi.
#
# Layout under the prefix (header-only, so everything is architecture-independent and goes under share/):
#   include/alibi/...                       the headers
#   share/cmake/alibi/alibiConfig*.cmake    find_package(alibi CONFIG) files
#   share/cmake/alibi/alibiTargets.cmake    the exported target alibi::alibi
#   share/pkgconfig/alibi.pc                pkg-config file
include(CMakePackageConfigHelpers)

set(ALIBI_INSTALL_CMAKEDIR "${CMAKE_INSTALL_DATADIR}/cmake/alibi"
    CACHE STRING "Install directory of alibiConfig.cmake, relative to the prefix")
set(ALIBI_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_DATADIR}/pkgconfig"
    CACHE STRING "Install directory of alibi.pc, relative to the prefix")
mark_as_advanced(ALIBI_INSTALL_CMAKEDIR ALIBI_INSTALL_PKGCONFIGDIR)

set_target_properties(alibi PROPERTIES EXPORT_NAME alibi)
install(TARGETS alibi EXPORT alibiTargets)
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/alibi" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")

install(EXPORT alibiTargets
        NAMESPACE alibi::
        DESTINATION "${ALIBI_INSTALL_CMAKEDIR}")

configure_package_config_file(
  "${CMAKE_CURRENT_LIST_DIR}/alibiConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/alibiConfig.cmake"
  INSTALL_DESTINATION "${ALIBI_INSTALL_CMAKEDIR}")

# 0.x releases may break the API at every minor version, so 0.1 only accepts 0.1.z. Revisit at 1.0
# (SameMajorVersion then).
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/alibiConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMinorVersion
  ARCH_INDEPENDENT)

install(FILES "${PROJECT_BINARY_DIR}/alibiConfig.cmake" "${PROJECT_BINARY_DIR}/alibiConfigVersion.cmake"
        DESTINATION "${ALIBI_INSTALL_CMAKEDIR}")

# Build-tree package: find_package(alibi CONFIG) with alibi_DIR=<this build dir> works without installing.
export(EXPORT alibiTargets
       NAMESPACE alibi::
       FILE "${PROJECT_BINARY_DIR}/alibiTargets.cmake")

# pkg-config: paths are relative to the .pc file itself (${pcfiledir}), so the file stays right when the
# install prefix is chosen at install time (cmake --install --prefix) or the tree is moved.
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(ALIBI_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  file(RELATIVE_PATH _alibi_pc_to_prefix "/prefix/${ALIBI_INSTALL_PKGCONFIGDIR}" "/prefix")
  string(REGEX REPLACE "/$" "" _alibi_pc_to_prefix "${_alibi_pc_to_prefix}")
  set(ALIBI_PC_INCLUDEDIR "\${pcfiledir}/${_alibi_pc_to_prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
  unset(_alibi_pc_to_prefix)
endif()
configure_file("${CMAKE_CURRENT_LIST_DIR}/alibi.pc.in" "${PROJECT_BINARY_DIR}/alibi.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/alibi.pc" DESTINATION "${ALIBI_INSTALL_PKGCONFIGDIR}")

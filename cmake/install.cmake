# `cmake --install`: the program, both library variants, the public headers,
# pkg-config and CMake package files, the data the engine and the CLI find
# at run time (share/visiongen), the Python binding; `cpack -G DEB` packs the
# same tree as a Debian package whose dependencies dpkg-shlibdeps computes.
include(CMakePackageConfigHelpers)

install(TARGETS visiongen_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS visiongen_shared LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_COMPONENT Unspecified)
install(TARGETS visiongen ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES include/visiongen/error.h include/visiongen/manager.h include/visiongen/params.h
              include/visiongen/visiongen.h include/visiongen/visiongen_c.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/visiongen)

set(VG_SHARE ${CMAKE_INSTALL_DATADIR}/visiongen)
install(DIRECTORY models/visiongen-shapes DESTINATION ${VG_SHARE}/models)
install(FILES data/clip/merges.txt DESTINATION ${VG_SHARE}/clip)
install(FILES src/server/ui/index.html DESTINATION ${VG_SHARE}/ui)
install(DIRECTORY data/presets data/registry DESTINATION ${VG_SHARE})
# Debian's python3 reads /usr/lib/python3/dist-packages (not the multiarch libdir).
set(VG_PYTHON_DIR lib/python3/dist-packages CACHE STRING "where the Python package installs, under the prefix")
install(DIRECTORY python/visiongen DESTINATION ${VG_PYTHON_DIR} PATTERN "__pycache__" EXCLUDE)
install(FILES docs/embedding.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

# pkg-config: relocatable (paths from the .pc file's own folder).
file(RELATIVE_PATH VG_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
configure_file(cmake/templates/visiongen.pc.in ${CMAKE_CURRENT_BINARY_DIR}/visiongen.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/visiongen.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# find_package(visiongen): visiongen::visiongen (shared) and visiongen::visiongen_static.
set(VG_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/visiongen)
configure_package_config_file(cmake/templates/visiongenConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/visiongenConfig.cmake INSTALL_DESTINATION ${VG_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/visiongenConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/visiongenConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/visiongenConfigVersion.cmake
        DESTINATION ${VG_CMAKE_DIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME visiongen)
set(CPACK_PACKAGE_VENDOR "visiongen developers")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "local generative-vision engine (diffusion models, CLI, server, C API)")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "visiongen developers <visiongen@localhost>")
set(CPACK_DEBIAN_PACKAGE_SECTION graphics)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "python3-pil, python3-numpy")
include(CPack)

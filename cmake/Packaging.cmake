# The Debian packages, built by CPack from this build tree (`cpack -G DEB` in
# the build folder; tests/packaging/package_test.sh does it and checks them):
#   clayhook      the host, its plugin worker, the bundled plugins, the
#                 systemd units, /etc/clayhook/clayhook.yaml, the docs
#   clayhook-dev  the plugin SDK: headers and the CMake package
# The binaries have the install layout compiled in (the bundled plugins'
# folder relative to /usr/bin, the default config /etc/clayhook/...), so the
# build must be configured with the prefix /usr, the default here.

set(CLAYHOOK_DEB_REVISION 1)
set(CLAYHOOK_DEB_VERSION "${PROJECT_VERSION}-${CLAYHOOK_DEB_REVISION}")
set(_pkg ${PROJECT_SOURCE_DIR}/packaging)
set(_gen ${PROJECT_BINARY_DIR}/packaging)

# /usr/share/doc/<package>/: copyright and a compressed changelog, for each.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_pkg}/debian/changelog.in)
configure_file(${_pkg}/debian/changelog.in ${_gen}/changelog.Debian @ONLY)
execute_process(COMMAND gzip -9nf ${_gen}/changelog.Debian RESULT_VARIABLE _gz)
if(NOT _gz EQUAL 0)
  message(FATAL_ERROR "gzip failed on ${_gen}/changelog.Debian")
endif()
foreach(comp_pkg "host;clayhook" "dev;clayhook-dev")
  list(GET comp_pkg 0 _comp)
  list(GET comp_pkg 1 _name)
  install(FILES ${_pkg}/debian/copyright ${_gen}/changelog.Debian.gz
          DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${_name} COMPONENT ${_comp})
endforeach()

# The host's files outside bin/ and lib/.
install(FILES ${_pkg}/clayhook.yaml DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/clayhook
        COMPONENT host)
install(FILES ${_pkg}/systemd/clayhook.service ${_pkg}/systemd/clayhook.socket
        DESTINATION /lib/systemd/system COMPONENT host)
install(FILES README.md docs/operations.md docs/configuration.md docs/cli.md docs/admin-api.md
              docs/contracts.md docs/architecture.md
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/clayhook COMPONENT host)
install(DIRECTORY docs/plugins DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/clayhook COMPONENT host)
# The manual page, compressed as Debian wants it.
execute_process(COMMAND gzip -9nc ${_pkg}/clayhook.1 OUTPUT_FILE ${_gen}/clayhook.1.gz
                RESULT_VARIABLE _gz)
if(NOT _gz EQUAL 0)
  message(FATAL_ERROR "gzip failed on ${_pkg}/clayhook.1")
endif()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_pkg}/clayhook.1)
install(FILES ${_gen}/clayhook.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT host)
# Lintian: the changelog closes no Debian bug (this is no upload to Debian).
install(FILES ${_pkg}/debian/lintian-overrides DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides
        RENAME clayhook COMPONENT host)
install(FILES ${_pkg}/debian/lintian-overrides DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides
        RENAME clayhook-dev COMPONENT dev)
install(FILES docs/writing-plugins.md DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/clayhook-dev
        COMPONENT dev)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME clayhook)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "clayhook maintainers <maintainers@clayhook.invalid>")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/packages)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL host dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${CLAYHOOK_DEB_REVISION})
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)

set(CPACK_DEBIAN_HOST_PACKAGE_NAME clayhook)
set(CPACK_DEBIAN_HOST_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_HOST_PACKAGE_DEPENDS "adduser")
# CPack indents each line of the extended description itself.
set(CPACK_DEBIAN_HOST_DESCRIPTION "webhook host for Clay pipelines
clayhook receives webhooks from Clay (and any sender that signs or tokens
its requests), verifies them, deduplicates retries, stores each delivery
durably before answering, and hands it to shared-library plugins: bundled
ones push to Salesforce and HubSpot, schedule retries, download exports
and write JSON lines.
.
This package runs it as a systemd service (clayhook.service, with an
optional clayhook.socket) configured in /etc/clayhook/clayhook.yaml.")
set(CPACK_DEBIAN_HOST_PACKAGE_CONTROL_EXTRA
    "${_pkg}/debian/postinst;${_pkg}/debian/prerm;${_pkg}/debian/postrm;${_pkg}/debian/conffiles")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME clayhook-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_DESCRIPTION "plugin SDK for the clayhook webhook host
The C ABI and C++20 headers a clayhook plugin is written against, and the
CMake package (find_package(clayhook-plugin-api)) with clayhook_add_plugin()
to build one as a shared library the host loads.")

include(CPack)

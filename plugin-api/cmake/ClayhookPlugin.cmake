# clayhook_add_plugin(<target> SOURCES <files...> [OUTPUT_NAME <name>])
#
# Adds a plugin module: a shared library loaded by the host with
# RTLD_NOW | RTLD_LOCAL. Everything is hidden except the one entry symbol
# (CLAYHOOK_PLUGIN exports it), unresolved symbols fail at link time instead
# of at load time, and -fno-gnu-unique keeps g++ from marking template statics
# STB_GNU_UNIQUE, which would make the library impossible to unload on reload.
function(clayhook_add_plugin target)
  cmake_parse_arguments(ARG "" "OUTPUT_NAME" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "clayhook_add_plugin(${target}): SOURCES is required")
  endif()
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE clayhook::plugin-api)
  target_compile_features(${target} PRIVATE cxx_std_20)
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  if(ARG_OUTPUT_NAME)
    set_target_properties(${target} PROPERTIES OUTPUT_NAME ${ARG_OUTPUT_NAME})
  endif()
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE -fno-gnu-unique)
  endif()
  target_link_options(${target} PRIVATE -Wl,--no-undefined)
endfunction()

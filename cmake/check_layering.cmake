# cmake -DLOOM_SOURCE_DIR=<root> -P cmake/check_layering.cmake
# Fails when a file of a module includes a header of a module it does not reach through the
# DEPENDS of cmake/modules.cmake (an upward or undeclared dependency), or when a file under
# src/loom or bench belongs to no declared module. Prints one line per offending include.
cmake_minimum_required(VERSION 3.25)
if(NOT LOOM_SOURCE_DIR)
  message(FATAL_ERROR "usage: cmake -DLOOM_SOURCE_DIR=<source root> -P check_layering.cmake")
endif()
include(${CMAKE_CURRENT_LIST_DIR}/loom_module.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/modules.cmake)

set(violations "")
set(checked 0)
file(GLOB_RECURSE files RELATIVE ${LOOM_SOURCE_DIR}
     ${LOOM_SOURCE_DIR}/src/loom/* ${LOOM_SOURCE_DIR}/bench/*)
foreach(file IN LISTS files)
  loom_module_of("${file}" FALSE module)
  if(module STREQUAL "")
    list(APPEND violations "${file}: in no module of cmake/modules.cmake")
    continue()
  endif()
  file(STRINGS ${LOOM_SOURCE_DIR}/${file} includes REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  foreach(line IN LISTS includes)
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]*)\".*" "\\1" header "${line}")
    loom_module_of("${header}" TRUE target)
    if(target STREQUAL "")
      continue()  # a header beside the file or a third-party one
    endif()
    math(EXPR checked "${checked} + 1")
    if(NOT target IN_LIST LOOM_MODULE_${module}_REACHES)
      string(REPLACE ";" " " reaches "${LOOM_MODULE_${module}_REACHES}")
      list(APPEND violations
           "${file}: includes \"${header}\" (module ${target}), but ${module} reaches only: ${reaches}")
    endif()
  endforeach()
endforeach()

if(checked EQUAL 0)
  message(FATAL_ERROR "no module includes found under ${LOOM_SOURCE_DIR}: wrong source root?")
endif()
if(violations)
  list(JOIN violations "\n  " text)
  message(FATAL_ERROR "includes against the layers of cmake/modules.cmake:\n  ${text}")
endif()
list(LENGTH LOOM_MODULES count)
message(STATUS "${checked} includes in ${count} modules follow cmake/modules.cmake")

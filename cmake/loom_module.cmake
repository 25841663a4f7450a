# loom_module(NAME DIR [DEPENDS module...]): records one row of cmake/modules.cmake.
# Afterwards LOOM_MODULES lists the names in declaration order and, per module,
# LOOM_MODULE_<name>_DIR holds its folder (relative to the source root),
# LOOM_MODULE_<name>_DEPENDS its declared dependencies and LOOM_MODULE_<name>_REACHES every
# module it may include (itself, its dependencies and theirs).
macro(loom_module name dir)
  cmake_parse_arguments(_lm "" "" "DEPENDS" ${ARGN})
  if(name IN_LIST LOOM_MODULES)
    message(FATAL_ERROR "loom_module(${name}): declared twice")
  endif()
  set(LOOM_MODULE_${name}_DIR "${dir}")
  set(LOOM_MODULE_${name}_DEPENDS "${_lm_DEPENDS}")
  set(LOOM_MODULE_${name}_REACHES "${name}")
  foreach(_lm_dep IN LISTS _lm_DEPENDS)
    if(NOT _lm_dep IN_LIST LOOM_MODULES)
      message(FATAL_ERROR "loom_module(${name}): depends on '${_lm_dep}', which is not declared "
                          "above it (modules: ${LOOM_MODULES})")
    endif()
    list(APPEND LOOM_MODULE_${name}_REACHES ${LOOM_MODULE_${_lm_dep}_REACHES})
  endforeach()
  list(REMOVE_DUPLICATES LOOM_MODULE_${name}_REACHES)
  list(APPEND LOOM_MODULES ${name})
endmacro()

# The prefix a module's headers are included by: "loom/parallel/" for src/loom/parallel,
# "bench/" for bench.
function(loom_module_include_prefix name out)
  string(REGEX REPLACE "^src/" "" prefix "${LOOM_MODULE_${name}_DIR}/")
  set(${out} "${prefix}" PARENT_SCOPE)
endfunction()

# The module whose folder holds `path` (relative to the source root; a file or an include path
# given with `include_form`), the deepest one when folders nest; "" when none does.
function(loom_module_of path include_form out)
  set(best "")
  set(best_len 0)
  foreach(m IN LISTS LOOM_MODULES)
    if(include_form)
      loom_module_include_prefix(${m} prefix)
    else()
      set(prefix "${LOOM_MODULE_${m}_DIR}/")
    endif()
    string(LENGTH "${prefix}" len)
    string(FIND "${path}" "${prefix}" at)
    if(at EQUAL 0 AND len GREATER best_len)
      set(best ${m})
      set(best_len ${len})
    endif()
  endforeach()
  set(${out} "${best}" PARENT_SCOPE)
endfunction()

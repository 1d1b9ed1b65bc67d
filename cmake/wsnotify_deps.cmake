# wsn_pkg_check(PREFIX SPEC...): pkg_check_modules(PREFIX IMPORTED_TARGET
# SPEC...), where each SPEC is module<op>version, and a configure error that
# says which versions are wanted and which one is installed when the range
# is not met. The specs are collected for the installed wsnotify.pc
# (WSN_PC_REQUIRES) and wsnotifyConfig.cmake (WSN_CONFIG_DEPS), so a
# consumer of an install checks the same range. python/wsnotify_ffibuild.py
# reads the module names from the wsn_pkg_check() calls in CMakeLists.txt:
# keep them literal there.
set(WSN_PC_REQUIRES "")
set(WSN_CONFIG_DEPS "")

function(wsn_pkg_check prefix)
  set(specs ${ARGN})
  list(GET specs 0 first)
  string(REGEX REPLACE "[<>=].*" "" module "${first}")
  set(range "")
  set(pc "")
  foreach(spec IN LISTS specs)
    string(REGEX MATCH "^([^<>=]+)([<>=]+)(.*)$" _m "${spec}")
    list(APPEND range "${CMAKE_MATCH_2} ${CMAKE_MATCH_3}")
    list(APPEND pc "${CMAKE_MATCH_1} ${CMAKE_MATCH_2} ${CMAKE_MATCH_3}")
  endforeach()
  list(JOIN range ", " range)
  list(JOIN pc ", " pc)
  list(JOIN specs " " args)

  if(WSN_PC_REQUIRES)
    set(pc "${WSN_PC_REQUIRES}, ${pc}")
  endif()
  set(WSN_PC_REQUIRES "${pc}" PARENT_SCOPE)
  set(WSN_CONFIG_DEPS
    "${WSN_CONFIG_DEPS}pkg_check_modules(${prefix} REQUIRED IMPORTED_TARGET ${args})\n"
    PARENT_SCOPE)

  pkg_check_modules(${prefix} IMPORTED_TARGET ${specs})
  if(${prefix}_FOUND)
    message(STATUS "${module} ${${prefix}_${module}_VERSION}: within ${range}")
    return()
  endif()
  pkg_check_modules(_wsn_any_${prefix} QUIET ${module})
  if(_wsn_any_${prefix}_FOUND)
    set(have "version ${_wsn_any_${prefix}_VERSION} is installed")
  else()
    set(have "pkg-config finds no ${module}.pc (not installed, or set PKG_CONFIG_PATH)")
  endif()
  message(FATAL_ERROR
    "wsnotify needs ${module} ${range}, the versions it is tested with "
    "(CMakeLists.txt); ${have}. scripts/setup.sh installs Debian 12's packages.")
endfunction()

# Fails when the core's libraries define a global symbol outside its own
# prefixes: wsn_ (the public API) and wsni_ (internal, static library
# only). A host or a dependency (msgpack_*, json_*, event_*) can then never
# collide with us. -DNM=... -DSTATIC=libwsnotify.a -DSHARED=libwsnotify.so
foreach(var NM STATIC SHARED)
  if(NOT ${var})
    message(FATAL_ERROR "check_symbols.cmake: ${var} not set")
  endif()
endforeach()

function(defined_globals out)
  execute_process(COMMAND ${NM} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE text
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NM} ${ARGN}: ${err}")
  endif()
  string(REPLACE "\n" ";" lines "${text}")
  set(names "")
  foreach(line IN LISTS lines)
    # "<address> <type> <name>"; type A marks the symbol version nodes.
    if(line MATCHES "^[0-9a-fA-F]+ ([A-Za-z]) ([^ ]+)$" AND NOT CMAKE_MATCH_1 STREQUAL "A")
      list(APPEND names "${CMAKE_MATCH_2}")
    endif()
  endforeach()
  set(${out} "${names}" PARENT_SCOPE)
endfunction()

set(bad "")
defined_globals(static_names -g --defined-only ${STATIC})
foreach(name IN LISTS static_names)
  # ASan adds an ODR indicator (__odr_asan.<name>) for each global variable
  # it instruments: ours when <name> is.
  if(NOT name MATCHES "^(__odr_asan\\.)?wsni?_")
    list(APPEND bad "static library: ${name}")
  endif()
endforeach()
defined_globals(shared_names -D --defined-only ${SHARED})
foreach(name IN LISTS shared_names)
  string(REGEX REPLACE "@.*" "" name "${name}")
  if(NOT name MATCHES "^wsn_")
    list(APPEND bad "shared library exports: ${name}")
  endif()
endforeach()
list(LENGTH static_names n_static)
list(LENGTH shared_names n_shared)
if(n_static EQUAL 0 OR n_shared EQUAL 0)
  message(FATAL_ERROR "no symbols read (${n_static} static, ${n_shared} shared): is ${NM} nm?")
endif()
if(bad)
  string(REPLACE ";" "\n  " bad "${bad}")
  message(FATAL_ERROR "symbols outside wsn_/wsni_:\n  ${bad}")
endif()
message(STATUS "${n_static} static and ${n_shared} exported symbols, all prefixed")

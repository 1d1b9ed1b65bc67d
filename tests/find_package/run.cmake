# ctest driver: install the build tree into a temporary prefix, then
# configure, build and run tests/find_package against it.
# Inputs: BUILD_DIR SRC_DIR WORK_DIR CMAKE_CMD SANITIZE GENERATOR
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

run(${CMAKE_CMD} --install ${BUILD_DIR} --prefix ${prefix})

foreach(f include/wsnotify.h include/wsnotify_ffi.h)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
# Only the public header (and its declarations for FFIs) is installed.
file(GLOB_RECURSE headers RELATIVE ${prefix}/include ${prefix}/include/*)
list(SORT headers)
if(NOT headers STREQUAL "wsnotify.h;wsnotify_ffi.h")
  message(FATAL_ERROR "installed headers: ${headers} (want only wsnotify.h, wsnotify_ffi.h)")
endif()

set(flags "")
if(SANITIZE STREQUAL "address")
  set(flags "-fsanitize=address,undefined")
elseif(SANITIZE STREQUAL "thread")
  set(flags "-fsanitize=thread")
endif()

set(ENV{PKG_CONFIG_PATH} "${prefix}/lib/pkgconfig:${prefix}/lib/x86_64-linux-gnu/pkgconfig")
run(${CMAKE_CMD} -S ${SRC_DIR} -B ${WORK_DIR}/build -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix}
    "-DCMAKE_C_FLAGS=${flags}" "-DCMAKE_EXE_LINKER_FLAGS=${flags}")
# The shared library is found through the install prefix (RPATH or
# LD_LIBRARY_PATH), never through the build tree.
file(GLOB libdirs ${prefix}/lib ${prefix}/lib/*-linux-gnu)
string(REPLACE ";" ":" libpath "${libdirs}")
set(ENV{LD_LIBRARY_PATH} "${libpath}")
# CMake package first, then pkg-config, so a failure names the route.
foreach(exe consumer_cmake consumer_static consumer_pkgconfig)
  run(${CMAKE_CMD} --build ${WORK_DIR}/build --target ${exe})
  run(${WORK_DIR}/build/${exe})
endforeach()

# The installed shared library exports only wsn_* symbols.
file(GLOB sos ${prefix}/lib/libwsnotify.so.* ${prefix}/lib/*-linux-gnu/libwsnotify.so.*)
list(GET sos 0 so)
execute_process(COMMAND nm -D --defined-only ${so} OUTPUT_VARIABLE syms RESULT_VARIABLE rc)
if(rc EQUAL 0)
  string(REGEX MATCHALL "[ \t][TDBRW] [A-Za-z_][A-Za-z0-9_]*" entries "${syms}")
  foreach(e IN LISTS entries)
    string(REGEX REPLACE "^[ \t][TDBRW] " "" name "${e}")
    if(NOT name MATCHES "^wsn_" AND NOT name MATCHES "^WSNOTIFY_")
      message(FATAL_ERROR "exported symbol outside wsn_*: ${name}")
    endif()
  endforeach()
endif()

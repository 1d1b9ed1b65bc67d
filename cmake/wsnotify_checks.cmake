# Checks of what the repository ships besides the code (ctest, label
# "tooling"): the ABI against the recorded baselines, and the FFI
# declaration file against the header and the FFI parsers that read it.

find_program(WSN_PYTHON_EXE NAMES python3 python DOC "Python for the tooling checks")
if(WSN_PYTHON)
  set(WSN_PYTHON_EXE "${WSN_PYTHON}")
endif()

# abidiff needs the library's DWARF: only builds with debug info record it.
option(WSN_ABI_CHECK "Compare the built library's ABI with abi/*.abi (abigail-tools)" ON)
if(WSN_ABI_CHECK AND CMAKE_BUILD_TYPE MATCHES "^(Debug|RelWithDebInfo)$")
  add_test(NAME tooling.abi_compat
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/scripts/abi.sh check $<TARGET_FILE:wsnotify>)
  set_tests_properties(tooling.abi_compat PROPERTIES LABELS tooling TIMEOUT 120)
endif()

if(WSN_PYTHON_EXE)
  add_test(NAME tooling.ffi_header_current
    COMMAND ${WSN_PYTHON_EXE} ${CMAKE_CURRENT_SOURCE_DIR}/scripts/gen_ffi_header.py --check)
  set_tests_properties(tooling.ffi_header_current PROPERTIES LABELS tooling TIMEOUT 60)
endif()

# The FFIs open the built library in an interpreter; a sanitizer build's
# library wants its runtime loaded first, which python3 and luajit are not.
# The plain build runs these (the declarations do not depend on the
# sanitizer).
if(WSN_SANITIZE)
  return()
endif()

if(WSN_PYTHON_EXE)
  add_test(NAME tooling.ffi_header_cffi
    COMMAND ${WSN_PYTHON_EXE} ${CMAKE_CURRENT_SOURCE_DIR}/scripts/ffi/check_cffi.py
      ${CMAKE_CURRENT_SOURCE_DIR}/include/wsnotify_ffi.h $<TARGET_FILE:wsnotify>)
  set_tests_properties(tooling.ffi_header_cffi PROPERTIES LABELS tooling TIMEOUT 60)
endif()

find_program(WSN_LUAJIT NAMES luajit)
if(WSN_LUAJIT)
  add_test(NAME tooling.ffi_header_luajit
    COMMAND ${WSN_LUAJIT} ${CMAKE_CURRENT_SOURCE_DIR}/scripts/ffi/check_luajit.lua
      ${CMAKE_CURRENT_SOURCE_DIR}/include/wsnotify_ffi.h $<TARGET_FILE:wsnotify>)
  set_tests_properties(tooling.ffi_header_luajit PROPERTIES LABELS tooling TIMEOUT 60)
endif()

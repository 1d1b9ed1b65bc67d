# Checks of what the repository ships besides the code (ctest, label
# "tooling"): the ABI against the recorded baselines.

# abidiff needs the library's DWARF: only builds with debug info record it.
option(WSN_ABI_CHECK "Compare the built library's ABI with abi/*.abi (abigail-tools)" ON)
if(WSN_ABI_CHECK AND CMAKE_BUILD_TYPE MATCHES "^(Debug|RelWithDebInfo)$")
  add_test(NAME tooling.abi_compat
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/scripts/abi.sh check $<TARGET_FILE:wsnotify>)
  set_tests_properties(tooling.abi_compat PROPERTIES LABELS tooling TIMEOUT 120)
endif()

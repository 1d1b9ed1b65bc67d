# Checks that a test program's table (PROG --list) and the names registered
# in tests/CMakeLists.txt (NAMES) are the same set, so no test is silently
# left out of ctest.
execute_process(COMMAND ${PROG} --list OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROG} --list failed: ${rc}")
endif()
string(REPLACE "\n" ";" listed "${out}")
list(FILTER listed EXCLUDE REGEX "^$")
list(SORT listed)
set(registered ${NAMES})
list(SORT registered)
if(NOT listed STREQUAL registered)
  message(FATAL_ERROR "test table mismatch:\n program: ${listed}\n cmake:   ${registered}")
endif()

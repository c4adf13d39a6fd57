# Runs `${IRQLAB} run ${SCENARIO} --trace=...` and compares the text trace
# with the golden file ${GOLDEN}, byte for byte. On a mismatch prints a
# unified diff (first 80 lines) and fails. Refresh the golden files after an
# intended change with scripts/update_golden.sh.
execute_process(COMMAND ${IRQLAB} run --quiet ${SCENARIO} --trace=${WORKDIR}/actual.trace
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${SCENARIO} failed with exit status ${rc}")
endif()
file(SHA256 ${WORKDIR}/actual.trace got)
file(SHA256 ${GOLDEN} want)
if(NOT got STREQUAL want)
  find_program(DIFF diff)
  if(DIFF)
    execute_process(COMMAND ${DIFF} -u ${GOLDEN} ${WORKDIR}/actual.trace OUTPUT_VARIABLE d)
    string(REPLACE "\n" ";" d_lines "${d}")
    list(SUBLIST d_lines 0 80 head)
    string(REPLACE ";" "\n" head "${head}")
    message("${head}")
  endif()
  message(FATAL_ERROR "trace of ${SCENARIO} differs from ${GOLDEN} "
                      "(scripts/update_golden.sh refreshes it after an intended change)")
endif()
message(STATUS "trace matches ${GOLDEN}")

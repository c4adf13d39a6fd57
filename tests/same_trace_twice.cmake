# Runs `${IRQLAB} run ${SCENARIO}` twice with --trace and --perfetto and
# fails unless both runs wrote byte-identical files (determinism).
foreach(i 1 2)
  execute_process(COMMAND ${IRQLAB} run --quiet ${SCENARIO}
                          --trace=${WORKDIR}/trace${i}.txt --perfetto=${WORKDIR}/trace${i}.json
                  RESULT_VARIABLE rc OUTPUT_QUIET)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "run ${i} of ${SCENARIO} failed with ${rc}")
  endif()
endforeach()
foreach(ext txt json)
  file(SHA256 ${WORKDIR}/trace1.${ext} a)
  file(SHA256 ${WORKDIR}/trace2.${ext} b)
  if(NOT a STREQUAL b)
    message(FATAL_ERROR "${ext} traces differ between two runs of ${SCENARIO}")
  endif()
endforeach()
file(STRINGS ${WORKDIR}/trace1.txt lines)
list(LENGTH lines n)
if(n LESS 100)
  message(FATAL_ERROR "suspiciously short trace: ${n} lines")
endif()
message(STATUS "identical traces, ${n} lines")

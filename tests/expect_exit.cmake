# Runs ${IRQLAB} ${ARGS}; passes iff it exits with ${EXPECT_RC} and its
# stderr matches ${REGEX}. (CTest alone cannot check both.)
execute_process(COMMAND ${IRQLAB} ${ARGS} RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL EXPECT_RC)
  message(FATAL_ERROR "exit code ${rc}, expected ${EXPECT_RC}\nstdout: ${out}\nstderr: ${err}")
endif()
if(NOT err MATCHES "${REGEX}")
  message(FATAL_ERROR "stderr does not match '${REGEX}':\n${err}")
endif()
message(STATUS "ok: ${err}")

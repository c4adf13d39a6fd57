# Runs ${IRQLAB} ${ARGS}; passes iff it exits with ${EXPECT_RC}, its stdout
# matches ${STDOUT_REGEX} and its stderr matches ${STDERR_REGEX} (each
# optional). expect_exit.cmake checks stderr only.
execute_process(COMMAND ${IRQLAB} ${ARGS} RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL EXPECT_RC)
  message(FATAL_ERROR "exit code ${rc}, expected ${EXPECT_RC}\nstdout: ${out}\nstderr: ${err}")
endif()
if(DEFINED STDOUT_REGEX AND NOT out MATCHES "${STDOUT_REGEX}")
  message(FATAL_ERROR "stdout does not match '${STDOUT_REGEX}':\n${out}")
endif()
if(DEFINED STDERR_REGEX AND NOT err MATCHES "${STDERR_REGEX}")
  message(FATAL_ERROR "stderr does not match '${STDERR_REGEX}':\n${err}")
endif()
message(STATUS "ok")

# `irqlab test DIR --junit=...` on a small suite written here: one passing
# scenario, one with failing expectations (in a subdirectory, with XML
# metacharacters in the expectation), one that does not validate and one
# with a syntax error. Checks the per-scenario lines, the summary, exit
# status 1, and the JUnit XML; then a suite that passes exits 0.
#   cmake -DIRQLAB=... -DWORKDIR=... -P suite_junit.cmake
file(REMOVE_RECURSE ${WORKDIR})
set(S ${WORKDIR}/suite)
file(WRITE ${S}/pass/hello.textproto
  "name: \"hello\"\nkernel { builtin: \"hello\" }\nexpect { exit_status: 1 serial_contains: \"PASS: hello\" }\n")
file(WRITE ${S}/sub/fail.textproto
  "name: \"fail\"\nkernel { builtin: \"hello\" }\nexpect { exit_status: 3 serial_contains: \"<&>\" }\n")
file(WRITE ${S}/sub/invalid.textproto
  "name: \"invalid\"\nmachine { cpus: 0 }\nkernel { builtin: \"hello\" }\n")
file(WRITE ${S}/syntax.textproto "name: {\n")
file(WRITE ${S}/notes.txt "not a scenario\n")

execute_process(COMMAND ${IRQLAB} test ${S} --junit=${WORKDIR}/out.xml --jobs=2
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 1)
  message(FATAL_ERROR "exit code ${rc}, expected 1\nstdout: ${out}\nstderr: ${err}")
endif()
set(expected_stdout
"PASS  ${S}/pass/hello.textproto
FAIL  ${S}/sub/fail.textproto
      exit status 3 (exit status was 1)
      serial contains \"<&>\" (not in the serial output)
FAIL  ${S}/sub/invalid.textproto
      error: machine.cpus: must be between 1 and 64, got 0
FAIL  ${S}/syntax.textproto
      error: ${S}/syntax.textproto:1:7: Expected string, got: {
4 scenarios: 1 passed, 3 failed")
string(FIND "${out}" "${expected_stdout}" at)
if(NOT at EQUAL 0)
  message(FATAL_ERROR "stdout is not\n${expected_stdout}\nbut\n${out}")
endif()

file(READ ${WORKDIR}/out.xml xml)
foreach(want
    "<testsuites name=\"irqlab\" tests=\"4\" failures=\"1\" errors=\"2\""
    "<testsuite name=\"suite\" tests=\"1\" failures=\"0\" errors=\"1\""
    "<testsuite name=\"suite/pass\" tests=\"1\" failures=\"0\" errors=\"0\""
    "<testsuite name=\"suite/sub\" tests=\"2\" failures=\"1\" errors=\"1\""
    "<testcase name=\"fail\" classname=\"suite/sub\""
    "<failure message=\"exit status 3 (exit status was 1); serial contains &quot;&lt;&amp;&gt;&quot; (not in the serial output)\" type=\"expectation\">"
    "<error message=\"machine.cpus: must be between 1 and 64, got 0\" type=\"error\">"
    "PASS: hello\nSUMMARY:"
    "</testsuites>\n")
  string(FIND "${xml}" "${want}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "out.xml lacks ${want}:\n${xml}")
  endif()
endforeach()

execute_process(COMMAND ${IRQLAB} test ${S}/pass RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "1 scenario: 1 passed, 0 failed")
  message(FATAL_ERROR "passing suite: exit code ${rc}\n${out}${err}")
endif()
message(STATUS "suite and JUnit XML as expected")

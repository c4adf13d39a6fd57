# Golden traces: the key stories' full text traces are compared with
# tests/golden/<name>.trace (tests golden.<name>). The list of scenarios is
# shared with scripts/update_golden.sh (tests/golden/SCENARIOS).
file(STRINGS ${CMAKE_CURRENT_SOURCE_DIR}/golden/SCENARIOS IRQLAB_GOLDEN_SCENARIOS REGEX "^[^#]")
foreach(rel ${IRQLAB_GOLDEN_SCENARIOS})
  string(REPLACE "/" "." name "${rel}")
  set(workdir ${CMAKE_CURRENT_BINARY_DIR}/golden/${name})
  file(MAKE_DIRECTORY ${workdir})
  add_test(NAME golden.${name}
           COMMAND ${CMAKE_COMMAND} -DIRQLAB=$<TARGET_FILE:irqlab>
                   -DSCENARIO=${CMAKE_SOURCE_DIR}/scenarios/${rel}.textproto
                   -DGOLDEN=${CMAKE_CURRENT_SOURCE_DIR}/golden/${name}.trace
                   -DWORKDIR=${workdir}
                   -P ${CMAKE_CURRENT_SOURCE_DIR}/golden_trace.cmake)
endforeach()

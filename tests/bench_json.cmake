# `irqlab bench` end to end (not a timed test): one cheap benchmark with a
# tiny minimum time; the merged JSON must hold exactly that result, tagged
# with its program, in Google Benchmark's format.
execute_process(COMMAND ${IRQLAB} bench --filter=BM_GuestApicDirect/cpus:1$ --min_time=0.01
                        --json=${WORKDIR}/bench.json
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "irqlab bench failed (${rc}): ${out} ${err}")
endif()
file(READ ${WORKDIR}/bench.json json)
string(JSON n LENGTH "${json}" benchmarks)
string(JSON name GET "${json}" benchmarks 0 name)
string(JSON program GET "${json}" benchmarks 0 program)
string(JSON cpus GET "${json}" context num_cpus)
if(NOT n EQUAL 1 OR NOT name STREQUAL "BM_GuestApicDirect/cpus:1" OR NOT program STREQUAL "vfio_bench")
  message(FATAL_ERROR "unexpected JSON: ${n} results, first ${name} from ${program}")
endif()
message(STATUS "bench JSON ok: ${name} from ${program} (${cpus} cpus)")

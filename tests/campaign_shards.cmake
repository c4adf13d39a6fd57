# Runs a campaign of ${SEEDS} seeds of ${SCENARIO} once in one process and
# once as 4 shards (GTEST_TOTAL_SHARDS/GTEST_SHARD_INDEX, default results
# names), merges the shards (in shuffled order) with `irqlab merge`, and
# fails unless the merged file is byte-identical to the single run. Also:
# each shard holds exactly its seeds, a merge with a shard missing says so,
# conflicting records and other scenarios are rejected with status 2.
#   cmake -DIRQLAB=... -DSCENARIO=... -DWORKDIR=... -P campaign_shards.cmake
set(SEEDS 40)
file(REMOVE_RECURSE ${WORKDIR})
file(MAKE_DIRECTORY ${WORKDIR})
# Hermetic: no sharding from the environment CTest itself runs in.
foreach(v GTEST_TOTAL_SHARDS GTEST_SHARD_INDEX JOB_COMPLETION_INDEX IRQLAB_TOTAL_SHARDS
          SLURM_ARRAY_TASK_ID SLURM_ARRAY_TASK_COUNT SLURM_ARRAY_TASK_MIN SLURM_ARRAY_TASK_STEP)
  unset(ENV{${v}})
endforeach()
get_filename_component(name ${SCENARIO} NAME_WE)

function(run expect_rc)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY ${WORKDIR} RESULT_VARIABLE rc
                  OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL expect_rc)
    message(FATAL_ERROR "${ARGN}\nexit code ${rc}, expected ${expect_rc}\nstdout: ${out}\nstderr: ${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
  set(err "${err}" PARENT_SCOPE)
endfunction()

function(count_lines file var)
  file(STRINGS ${file} lines)
  list(LENGTH lines n)
  set(${var} ${n} PARENT_SCOPE)
endfunction()

# One process.
run(0 ${IRQLAB} campaign ${SCENARIO} --seeds=1..${SEEDS} --jobs=2 --results=single.jsonl)
if(NOT out MATCHES "total +${SEEDS} +${SEEDS} +0\n")
  message(FATAL_ERROR "single run: no summary with ${SEEDS} passed runs:\n${out}")
endif()
count_lines(${WORKDIR}/single.jsonl n)
if(NOT n EQUAL SEEDS)
  message(FATAL_ERROR "single.jsonl has ${n} records, expected ${SEEDS}")
endif()
file(STRINGS ${WORKDIR}/single.jsonl lines)
set(expect_seed 1)
foreach(line IN LISTS lines)
  if(NOT line MATCHES "^{\"scenario\":\"[^\"]*\",.*\"seed\":\"${expect_seed}\",\"outcome\":\"exit\",.*\"passed\":true,\"failed\":\\[\\],\"trace_hash\":\"[0-9a-f]+\",")
    message(FATAL_ERROR "record ${expect_seed} of single.jsonl is not a passing record of seed ${expect_seed}:\n${line}")
  endif()
  math(EXPR expect_seed "${expect_seed} + 1")
endforeach()

# Four shards, as CTest/gtest-parallel would run them.
math(EXPR per_shard "${SEEDS} / 4")
foreach(k 0 1 2 3)
  run(0 ${CMAKE_COMMAND} -E env GTEST_TOTAL_SHARDS=4 GTEST_SHARD_INDEX=${k}
      ${IRQLAB} campaign ${SCENARIO} --seeds=1..${SEEDS} --jobs=2)
  set(shard ${WORKDIR}/${name}.campaign.shard-${k}-of-4.jsonl)
  if(NOT EXISTS ${shard})
    message(FATAL_ERROR "shard ${k} wrote no ${shard}:\n${out}")
  endif()
  if(NOT out MATCHES "shard ${k} of 4 \\(GTEST_SHARD_INDEX/GTEST_TOTAL_SHARDS\\)")
    message(FATAL_ERROR "shard ${k} does not say which shard it is:\n${out}")
  endif()
  count_lines(${shard} n)
  if(NOT n EQUAL per_shard)
    message(FATAL_ERROR "shard ${k} has ${n} records, expected ${per_shard}")
  endif()
  file(STRINGS ${shard} lines)
  foreach(line IN LISTS lines)
    string(REGEX MATCH "\"seed\":\"([0-9]+)\"" m "${line}")
    math(EXPR r "(${CMAKE_MATCH_1} - 1) % 4")
    if(NOT r EQUAL k)
      message(FATAL_ERROR "shard ${k} ran seed ${CMAKE_MATCH_1}")
    endif()
  endforeach()
endforeach()

run(0 ${IRQLAB} merge merged.jsonl ${name}.campaign.shard-3-of-4.jsonl
    ${name}.campaign.shard-1-of-4.jsonl ${name}.campaign.shard-0-of-4.jsonl
    ${name}.campaign.shard-2-of-4.jsonl)
if(NOT out MATCHES "total +${SEEDS} +${SEEDS} +0\n")
  message(FATAL_ERROR "merge: no summary with ${SEEDS} passed runs:\n${out}")
endif()
file(SHA256 ${WORKDIR}/single.jsonl a)
file(SHA256 ${WORKDIR}/merged.jsonl b)
if(NOT a STREQUAL b)
  message(FATAL_ERROR "the merge of 4 shards differs from the single-process run "
                      "(diff ${WORKDIR}/single.jsonl ${WORKDIR}/merged.jsonl)")
endif()

# A shard missing: merged, but reported.
run(0 ${IRQLAB} merge partial.jsonl ${name}.campaign.shard-0-of-4.jsonl
    ${name}.campaign.shard-1-of-4.jsonl ${name}.campaign.shard-3-of-4.jsonl)
if(NOT err MATCHES "warning: ${per_shard} seeds of the campaign have no record.*: 3, 7, 11")
  message(FATAL_ERROR "merge with shard 2 missing does not report it:\n${err}")
endif()

# A conflicting record for seed 5, and a record of another scenario.
file(STRINGS ${WORKDIR}/single.jsonl lines)
list(GET lines 4 line5)
string(REPLACE "\"passed\":true" "\"passed\":false" conflict "${line5}")
file(WRITE ${WORKDIR}/conflict.jsonl "${conflict}\n")
run(2 ${IRQLAB} merge bad.jsonl single.jsonl conflict.jsonl)
if(NOT err MATCHES "seed 5 has conflicting records in single.jsonl and conflict.jsonl")
  message(FATAL_ERROR "conflict not reported:\n${err}")
endif()
string(REGEX REPLACE "\"scenario\":\"[^\"]*\"" "\"scenario\":\"another\"" other "${line5}")
file(WRITE ${WORKDIR}/other.jsonl "${other}\n")
run(2 ${IRQLAB} merge bad.jsonl single.jsonl other.jsonl)
if(NOT err MATCHES "other.jsonl has results of scenario \"another\".*different scenarios cannot be merged")
  message(FATAL_ERROR "merge of different scenarios not rejected clearly:\n${err}")
endif()
if(EXISTS ${WORKDIR}/bad.jsonl)
  message(FATAL_ERROR "a failed merge wrote its output")
endif()
message(STATUS "4 shards merged = single run, ${SEEDS} records")

# End-to-end tests of the irqlab binary: every scenario in scenarios/ passes,
# and bad input gets a clear message and exit code 2, never a crash.
file(GLOB_RECURSE IRQLAB_SCENARIOS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/scenarios/*.textproto)
foreach(scenario ${IRQLAB_SCENARIOS})
  # scenarios/ath11k/bare_metal.textproto -> scenario.ath11k.bare_metal
  file(RELATIVE_PATH rel ${CMAKE_SOURCE_DIR}/scenarios ${scenario})
  string(REGEX REPLACE "\\.textproto$" "" name "${rel}")
  string(REPLACE "/" "." name "${name}")
  add_test(NAME scenario.${name} COMMAND irqlab run --quiet ${scenario})
  set_tests_properties(scenario.${name} PROPERTIES TIMEOUT 300)
endforeach()

add_test(NAME cli.default_scenario COMMAND irqlab --quiet)
# The default is the ath11k-under-vfio story: the driver fails (status 3) and
# the host logs Linux's 0x25 fault line; every expectation passes.
set_tests_properties(cli.default_scenario PROPERTIES PASS_REGULAR_EXPRESSION
  "PASS: exit status 3.*Blocked a compatibility format interrupt request.*PASS: interrupt accounting holds\n16 passed, 0 failed")

# Each bad-input case: (name, expected stderr regex, args...).
function(irqlab_bad_input name regex)
  add_test(NAME cli.bad_input.${name} COMMAND ${CMAKE_COMMAND}
           -DIRQLAB=$<TARGET_FILE:irqlab> -DREGEX=${regex} -DEXPECT_RC=2
           "-DARGS=${ARGN}" -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_exit.cmake)
endfunction()
set(BAD ${CMAKE_CURRENT_SOURCE_DIR}/bad_scenarios)
irqlab_bad_input(syntax_error "syntax_error.textproto:4:" run ${BAD}/syntax_error.textproto)
irqlab_bad_input(unknown_field "unknown_field.textproto:3:.*no_such_field" run ${BAD}/unknown_field.textproto)
irqlab_bad_input(zero_cpus "machine.cpus" run ${BAD}/zero_cpus.textproto)
irqlab_bad_input(missing_kernel "kernel: cannot open .*does-not-exist.elf" run ${BAD}/missing_kernel.textproto)
irqlab_bad_input(not_multiboot "kernel:.*multiboot" run ${BAD}/not_multiboot.textproto)
irqlab_bad_input(doorbell_overlaps_ram
  "machine.host.msi_doorbell_iova: .*overlaps the reserved msi-doorbell range 0x8000000-0x80fffff"
  run ${BAD}/doorbell_overlaps_ram.textproto)
irqlab_bad_input(assigned_slot_twice "machine.host.assigned\\[1\\].guest_slot: slot 6 is used twice"
  run ${BAD}/assigned_slot_twice.textproto)
irqlab_bad_input(fault_needs_viommu "faults\\[0\\]: needs a guest VT-d"
  run ${BAD}/fault_needs_viommu.textproto)
irqlab_bad_input(fault_without_kind "faults\\[0\\]: set one fault kind"
  run ${BAD}/fault_without_kind.textproto)
irqlab_bad_input(fault_invalidation_needs_viommu "faults\\[0\\]: needs a guest VT-d"
  run ${BAD}/fault_invalidation_needs_viommu.textproto)
irqlab_bad_input(fault_invalidation_delay "faults\\[1\\].delay_invalidation.ticks: must be > 0"
  run ${BAD}/fault_invalidation_delay.textproto)
irqlab_bad_input(fault_msix_index
  "faults\\[0\\].msix_entry.index: must be below the table size 64 of 00:04.0"
  run ${BAD}/fault_msix_index.textproto)
irqlab_bad_input(fault_delay_eoi_zero "faults\\[0\\].delay_eoi.ticks: must be > 0"
  run ${BAD}/fault_delay_eoi_zero.textproto)
irqlab_bad_input(unknown_assigned_device "machine.host.assigned\\[0\\].device: unknown physical device \"e1000\""
  run ${BAD}/unknown_assigned_device.textproto)
irqlab_bad_input(ram_too_small "RAM too small" boot hello --ram=2M --quiet)
irqlab_bad_input(missing_file "cannot open .*nope.elf" boot /nonexistent/nope.elf)
irqlab_bad_input(cpus_zero "--cpus: must be between" boot hello --cpus=0)
irqlab_bad_input(bad_inject_cpu "actions\\[0\\].inject.cpu" run ${BAD}/bad_inject_cpu.textproto)
irqlab_bad_input(unknown_builtin "no built-in kernel \"nosuch\"" run ${BAD}/unknown_builtin.textproto)
irqlab_bad_input(missing_scenario "cannot open" run /nonexistent/x.textproto)
irqlab_bad_input(unknown_command "unknown command" frobnicate)
irqlab_bad_input(unknown_device "--device: unknown device \"foo\"" boot hello --device=foo)
irqlab_bad_input(device_options "device \"edu\" has no option \"x\"" boot hello --device=edu,x=1)
irqlab_bad_input(iommu_option_value "--device: intel-iommu option intremap must be on or off" boot hello --device=intel-iommu,intremap=maybe)
irqlab_bad_input(iommu_cfi_value "^irqlab boot: --device: intel-iommu option cfi must be on or off, got \"yes\"\n$"
  boot hello --device=intel-iommu,cfi=yes)
irqlab_bad_input(iommu_devtlb_value
  "^irqlab boot: --device: intel-iommu option devtlb must be off, on, noanswer or badcompletion, got \"slow\"\n$"
  boot hello --device=intel-iommu,devtlb=slow)
irqlab_bad_input(iommu_devtlb_scenario
  "machine.devices\\[0\\]: intel-iommu option devtlb must be off, on, noanswer or badcompletion, got \"maybe\""
  run ${BAD}/iommu_devtlb_value.textproto)

# --device=intel-iommu,cfi=on|off: the guest VT-d library sets GCMD.CFI after
# IRE (cfi=on) or leaves it clear (cfi=off, as Linux): a compatibility-format
# MSI from irqlab-testdev is delivered, or blocked with fault 0x25.
foreach(cfi on off)
  if(cfi STREQUAL "on")
    set(cfi_regex "GSTS 0x07800000 after IRE \\(irqlab.vtd_cfi=1\\).*PASS: vtd_compat_msi_delivered\n.*SUMMARY: 2 tests, 0 failures")
  else()
    set(cfi_regex "GSTS 0x07000000 after IRE \\(irqlab.vtd_cfi=0\\).*\\[fault reason 0x25\\] Blocked a compatibility format interrupt request\nPASS: vtd_compat_msi_blocked\n.*SUMMARY: 2 tests, 0 failures")
  endif()
  add_test(NAME cli.boot_intel_iommu_cfi_${cfi} COMMAND ${CMAKE_COMMAND}
           -DIRQLAB=$<TARGET_FILE:irqlab> -DEXPECT_RC=1 "-DSTDERR_REGEX=^$"
           "-DSTDOUT_REGEX=${cfi_regex}"
           "-DARGS=boot;vtd_qi;--device=intel-iommu,cfi=${cfi};--device=irqlab-testdev;--append=cases=compat"
           -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_output.cmake)
endforeach()

# A kernel boots with every optional PCI device attached.
# (exit status 1 = the guest's debug-exit value 0)
add_test(NAME cli.boot_with_devices COMMAND ${CMAKE_COMMAND}
         -DIRQLAB=$<TARGET_FILE:irqlab> -DREGEX=^$ -DEXPECT_RC=1
         "-DARGS=boot;hello;--quiet;--device=edu;--device=irqlab-testdev"
         -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_exit.cmake)

# Determinism on 4 vCPUs with IPIs, timers and devices: the same scenario
# gives byte-identical text and Perfetto traces.
foreach(s apic_ipi_4cpu pci_4cpu)
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/determinism_${s})
  add_test(NAME cli.deterministic_trace.${s} COMMAND ${CMAKE_COMMAND}
           -DIRQLAB=$<TARGET_FILE:irqlab> -DSCENARIO=${CMAKE_SOURCE_DIR}/scenarios/${s}.textproto
           -DWORKDIR=${CMAKE_CURRENT_BINARY_DIR}/determinism_${s}
           -P ${CMAKE_CURRENT_SOURCE_DIR}/same_trace_twice.cmake)
endforeach()

# --- Campaigns, shards, merges and suites (irqlab campaign / merge / test). ---
set(HELLO ${CMAKE_SOURCE_DIR}/scenarios/hello.textproto)
irqlab_bad_input(campaign_seeds_reversed "--seeds=5..2: empty seed range" campaign ${HELLO} --seeds=5..2)
irqlab_bad_input(campaign_seeds_not_a_range "--seeds=x: not a seed range" campaign ${HELLO} --seeds=x)
irqlab_bad_input(campaign_no_seeds "--seeds=A..B is required" campaign ${HELLO})
irqlab_bad_input(campaign_missing_scenario "cannot open .*/nonexistent/x.textproto" campaign /nonexistent/x.textproto --seeds=1..2)
irqlab_bad_input(campaign_bad_scenario "campaign: .*machine.cpus" campaign ${BAD}/zero_cpus.textproto --seeds=1..4)
irqlab_bad_input(campaign_unknown_flag "unknown flag --seed_range" campaign ${HELLO} --seed_range=1..2)
irqlab_bad_input(campaign_bad_jobs "--jobs=many" campaign ${HELLO} --seeds=1..2 --jobs=many)
irqlab_bad_input(campaign_shards_without_index "--shards=4 needs a shard index" campaign ${HELLO} --seeds=1..8 --shards=4)
irqlab_bad_input(merge_missing_input "cannot open results file" merge ${CMAKE_CURRENT_BINARY_DIR}/never-written.jsonl /nonexistent/shard.jsonl)
irqlab_bad_input(merge_no_inputs "give the output file and at least one results file" merge out.jsonl)
irqlab_bad_input(test_missing_dir "/nonexistent/suite: no such file or directory" test /nonexistent/suite)
irqlab_bad_input(test_empty_dir "no \\*.textproto scenario files" test ${CMAKE_SOURCE_DIR}/emu)
# Contradictory shard settings from the environment.
add_test(NAME cli.bad_input.campaign_shard_index_too_big
         COMMAND ${CMAKE_COMMAND} -E env GTEST_TOTAL_SHARDS=4 GTEST_SHARD_INDEX=4
                 ${CMAKE_COMMAND} -DIRQLAB=$<TARGET_FILE:irqlab>
                 "-DREGEX=GTEST_SHARD_INDEX=4 is not below the shard count GTEST_TOTAL_SHARDS=4"
                 -DEXPECT_RC=2 "-DARGS=campaign;${HELLO};--seeds=1..8"
                 -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_exit.cmake)
add_test(NAME cli.bad_input.campaign_job_index_without_count
         COMMAND ${CMAKE_COMMAND} -E env JOB_COMPLETION_INDEX=1
                 ${CMAKE_COMMAND} -DIRQLAB=$<TARGET_FILE:irqlab>
                 "-DREGEX=JOB_COMPLETION_INDEX=1 needs the shard count"
                 -DEXPECT_RC=2 "-DARGS=campaign;${HELLO};--seeds=1..8"
                 -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_exit.cmake)

# 40 seeds as 4 GTEST_* shards, merged, byte-identical to one process.
add_test(NAME cli.campaign.shards_merge_equal_single_run COMMAND ${CMAKE_COMMAND}
         -DIRQLAB=$<TARGET_FILE:irqlab> -DSCENARIO=${HELLO}
         -DWORKDIR=${CMAKE_CURRENT_BINARY_DIR}/campaign_shards
         -P ${CMAKE_CURRENT_SOURCE_DIR}/campaign_shards.cmake)
set_tests_properties(cli.campaign.shards_merge_equal_single_run PROPERTIES TIMEOUT 300)

# A worker over its wall-clock budget is killed, recorded as a timeout, and
# the campaign finishes (exit 1) with every seed recorded.
add_test(NAME cli.campaign.worker_timeout_recorded COMMAND ${CMAKE_COMMAND}
         -DIRQLAB=$<TARGET_FILE:irqlab> -DEXPECT_RC=1 "-DSTDERR_REGEX=^$"
         "-DSTDOUT_REGEX=timeout +3 +0 +3\n.*seed 3: timeout: worker killed after 0.001 s wall clock"
         "-DARGS=campaign;${HELLO};--seeds=1..3;--jobs=2;--worker_timeout=0.001;--results=${CMAKE_CURRENT_BINARY_DIR}/campaign_timeout.jsonl"
         -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_output.cmake)

# `irqlab test DIR --junit`.
add_test(NAME cli.test.suite_and_junit COMMAND ${CMAKE_COMMAND}
         -DIRQLAB=$<TARGET_FILE:irqlab> -DWORKDIR=${CMAKE_CURRENT_BINARY_DIR}/suite_junit
         -P ${CMAKE_CURRENT_SOURCE_DIR}/suite_junit.cmake)

# irqlab bench: bad input, and the merged JSON (needs the bench programs).
irqlab_bad_input(bench_extra_argument "irqlab bench: unexpected argument" bench extra)
# (bench/ is configured after tests/, so the programs are not targets yet
# here; the default build builds them.)
add_test(NAME cli.bench.json COMMAND ${CMAKE_COMMAND} -DIRQLAB=$<TARGET_FILE:irqlab>
         -DWORKDIR=${CMAKE_CURRENT_BINARY_DIR} -P ${CMAKE_CURRENT_SOURCE_DIR}/bench_json.cmake)

# --- Scoped flags, help and exit codes (irqlab --help). ---
# A flag of another command is an error naming the commands that take it
# (Abseil flags are global; without this check they were silently ignored).
irqlab_bad_input(scoped_run_cpus "^irqlab run: --cpus is not a flag of this command \\(it is taken by irqlab boot\\)\n$"
  run ${HELLO} --cpus=4)
irqlab_bad_input(scoped_run_device "^irqlab run: --device is not a flag of this command \\(it is taken by irqlab boot\\)\n$"
  run ${HELLO} --device=edu)
irqlab_bad_input(scoped_campaign_trace "^irqlab campaign: --trace is not a flag of this command"
  campaign ${HELLO} --seeds=1..2 --trace=t.txt)
irqlab_bad_input(scoped_test_seed "^irqlab test: --seed is not a flag of this command \\(it is taken by irqlab \\(no command\\), irqlab run\\)"
  test ${CMAKE_SOURCE_DIR}/scenarios --seed=5)
irqlab_bad_input(scoped_merge_jobs "^irqlab merge: --jobs is not a flag of this command"
  merge out.jsonl in.jsonl --jobs=2)
irqlab_bad_input(scoped_default_cpus "^irqlab: --cpus is not a flag of this command" --cpus=2)
irqlab_bad_input(scoped_negated_bool "^irqlab campaign: --quiet is not a flag of this command"
  campaign ${HELLO} --seeds=1..2 --noquiet)
# Validation gaps: each a one-line error naming the flag or path, exit 2.
irqlab_bad_input(run_directory "scenario: \".*/scenarios\" is a directory \\(irqlab test DIR runs every scenario under it\\)"
  run ${CMAKE_SOURCE_DIR}/scenarios)
irqlab_bad_input(run_endless_file "scenario: \"/dev/zero\" is larger than 16 MiB" run /dev/zero)
irqlab_bad_input(empty_scenario_names_file "^irqlab: .*/empty.textproto: kernel: set kernel.builtin or kernel.path\n$"
  run ${BAD}/empty.textproto)
irqlab_bad_input(boot_max_time_negative "^irqlab boot: --max_time: must be >= 0 ticks \\(0 = no limit\\), got -5\n$"
  boot hello --max_time=-5)
irqlab_bad_input(boot_timeout_negative "^irqlab boot: --timeout: must be >= 0 seconds" boot hello --timeout=-1)
irqlab_bad_input(boot_device_without_value "flag --device needs a value" boot hello --device)
irqlab_bad_input(boot_ram_terabyte "--ram: must be a multiple of 4 KiB between 2 MiB and" boot hello --ram=1T)
irqlab_bad_input(bench_bad_filter "^irqlab bench: --filter=\\(: not a regular expression" bench --filter=\()

# --help, -h and `help` print irqlab's own text and exit 0.
foreach(help_arg --help -h help)
  add_test(NAME cli.help.${help_arg} COMMAND ${CMAKE_COMMAND}
           -DIRQLAB=$<TARGET_FILE:irqlab> -DEXPECT_RC=0 "-DSTDERR_REGEX=^$"
           "-DSTDOUT_REGEX=^irqlab: an x86 full-system emulator.*3 emulator or host failure"
           "-DARGS=${help_arg}" -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_output.cmake)
endforeach()

# An emulator/host failure exits 3, never 1 (which `boot` uses for "the guest
# passed"): Unicorn exit(1)s when it cannot allocate its translation buffer
# under a small address-space limit. (Not under the sanitizers: ASan needs a
# huge address space to start at all.)
if(NOT IRQLAB_SANITIZE)
  add_test(NAME cli.host_failure_exits_3 COMMAND ${CMAKE_COMMAND}
           -DIRQLAB=/bin/sh -DEXPECT_RC=3
           "-DREGEX=irqlab: emulator failure: a library ended the process during the run"
           "-DARGS=-c;ulimit -v 3000000 && exec $<TARGET_FILE:irqlab> boot hello --cpus=8 --quiet"
           -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_exit.cmake)
endif()

# `boot` has no virtual time limit by default (as QEMU): a kernel that halts
# for 2 s of virtual time on the APIC timer runs to its debug-exit (status
# (0x2A << 1) | 1 = 85); --max_time still limits; --timeout limits wall time.
set(LONG_TIMER ${CMAKE_CURRENT_BINARY_DIR}/guest/long_timer.bin)
add_test(NAME cli.boot_no_time_limit_by_default COMMAND ${CMAKE_COMMAND}
         -DIRQLAB=$<TARGET_FILE:irqlab> -DREGEX=^$ -DEXPECT_RC=85
         "-DARGS=boot;${LONG_TIMER};--quiet" -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_exit.cmake)
add_test(NAME cli.boot_max_time_limits COMMAND ${CMAKE_COMMAND}
         -DIRQLAB=$<TARGET_FILE:irqlab> "-DREGEX=^irqlab: virtual time limit 1000000000 reached\n$"
         -DEXPECT_RC=124 "-DARGS=boot;${LONG_TIMER};--quiet;--max_time=1000000000"
         -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_exit.cmake)
add_test(NAME cli.boot_wall_timeout COMMAND ${CMAKE_COMMAND}
         -DIRQLAB=$<TARGET_FILE:irqlab> "-DREGEX=^irqlab: wall-clock timeout of 0.3 s reached at virtual time [0-9]+\n$"
         -DEXPECT_RC=124 "-DARGS=boot;irqloop;--quiet;--append=spin=1;--timeout=0.3"
         -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_exit.cmake)

# CPU identity (emu/cpu/cpu_model.h): GenuineIntel by default, Unicorn's AMD
# identity on request; `irqlab cpus` lists the models; bad specs exit 2.
add_test(NAME cli.cpu_default_vendor_intel COMMAND ${CMAKE_COMMAND}
         -DIRQLAB=$<TARGET_FILE:irqlab> -DEXPECT_RC=1 "-DSTDERR_REGEX=^$"
         "-DSTDOUT_REGEX=cpuid.0 vendor 'GenuineIntel', max leaf 0x16\n.*PASS: hello"
         "-DARGS=boot;hello" -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_output.cmake)
add_test(NAME cli.cpu_qemu64_vendor_amd COMMAND ${CMAKE_COMMAND}
         -DIRQLAB=$<TARGET_FILE:irqlab> -DEXPECT_RC=1 "-DSTDERR_REGEX=^$"
         "-DSTDOUT_REGEX=cpuid.0 vendor 'AuthenticAMD', max leaf 0xd\ncpuid.1 ecx=0x80002001 .*PASS: hello"
         "-DARGS=boot;hello;--cpu=qemu64,-x2apic,-tsc-deadline" -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_output.cmake)
add_test(NAME cli.cpus_lists_models COMMAND ${CMAKE_COMMAND}
         -DIRQLAB=$<TARGET_FILE:irqlab> -DEXPECT_RC=0 "-DSTDERR_REGEX=^$"
         "-DSTDOUT_REGEX=^CPU models .*\n  skylake  GenuineIntel.*\n  qemu64   AuthenticAMD"
         "-DARGS=cpus" -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_output.cmake)
irqlab_bad_input(cpu_unknown_model "^irqlab boot: --cpu: unknown CPU model \"pentium\" \\(known: skylake, qemu64; see irqlab cpus\\)\n$"
  boot hello --cpu=pentium)
irqlab_bad_input(cpu_unknown_feature "^irqlab boot: --cpu: unknown feature \"\\+avx\"" boot hello --cpu=skylake,+avx)
irqlab_bad_input(scenario_cpu_model "machine.cpu_model: unknown CPU model \"k6\"" run ${BAD}/unknown_cpu_model.textproto)

# The QEMU-compatibility profile (emu/core/compat.h).
irqlab_bad_input(compat_value "^irqlab boot: --compat: must be spec or qemu, got \"kvm\"\n$" boot hello --compat=kvm)
add_test(NAME cli.boot_compat_qemu COMMAND ${CMAKE_COMMAND}
         -DIRQLAB=$<TARGET_FILE:irqlab> -DREGEX=^$ -DEXPECT_RC=1
         "-DARGS=boot;pci;--quiet;--compat=qemu;--device=edu"
         -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_exit.cmake)

# GoogleTest's sharding protocol: the campaign creates GTEST_SHARD_STATUS_FILE
# when it is set (Bazel fails sharded tests that do not).
set(SHARD_STATUS ${CMAKE_CURRENT_BINARY_DIR}/shard_status_file)
add_test(NAME cli.campaign.creates_gtest_shard_status_file COMMAND /bin/sh -c
         "rm -f '${SHARD_STATUS}' && GTEST_SHARD_STATUS_FILE='${SHARD_STATUS}' GTEST_TOTAL_SHARDS=2 GTEST_SHARD_INDEX=0 '$<TARGET_FILE:irqlab>' campaign '${HELLO}' --seeds=1..2 --jobs=1 --results='${CMAKE_CURRENT_BINARY_DIR}/shard_status.jsonl' >/dev/null && test -f '${SHARD_STATUS}'")
irqlab_bad_input(campaign_shard_status_unwritable "GTEST_SHARD_STATUS_FILE=/nonexistent/dir/status: cannot create"
  campaign ${HELLO} --seeds=1..2)
set_tests_properties(cli.bad_input.campaign_shard_status_unwritable PROPERTIES
  ENVIRONMENT "GTEST_SHARD_STATUS_FILE=/nonexistent/dir/status")
# An unknown expect.outcome is bad input at parse time (exit 2), not a
# failed expectation after the run.
irqlab_bad_input(unknown_outcome "unknown_outcome.textproto: expect.outcome: unknown outcome \"exited\" \\(known: exit, hang, time_limit, shutdown\\)"
  run ${BAD}/unknown_outcome.textproto)

# End-to-end tests of the irqlab binary: every scenario in scenarios/ passes,
# and bad input gets a clear message and exit code 2, never a crash.
file(GLOB IRQLAB_SCENARIOS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/scenarios/*.textproto)
foreach(scenario ${IRQLAB_SCENARIOS})
  get_filename_component(name ${scenario} NAME_WE)
  add_test(NAME scenario.${name} COMMAND irqlab run --quiet ${scenario})
  set_tests_properties(scenario.${name} PROPERTIES TIMEOUT 300)
endforeach()

add_test(NAME cli.default_scenario COMMAND irqlab --quiet)
set_tests_properties(cli.default_scenario PROPERTIES PASS_REGULAR_EXPRESSION "PASS: exit status 1")

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

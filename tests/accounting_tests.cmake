# The interrupt accounting (emu/core/irq_ledger.h) as `irqlab run` reports it:
# exact per-source outcome counts for the stories, and a run whose device
# MSI vanishes (fault kind `vanish`) failing with the lost message named.
function(irqlab_accounting name scenario rc regex)
  add_test(NAME accounting.${name} COMMAND ${CMAKE_COMMAND}
           -DIRQLAB=$<TARGET_FILE:irqlab> -DEXPECT_RC=${rc} "-DSTDOUT_REGEX=${regex}"
           "-DARGS=run;--quiet;${scenario}"
           -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_output.cmake)
endfunction()
set(S ${CMAKE_SOURCE_DIR}/scenarios)
irqlab_accounting(edu_loop ${S}/pci_eduloop.textproto 0
  "\ninterrupts: 1000 raised: device 1000 \\(accepted 1000\\); accounting holds\n.*PASS: interrupt accounting holds\n")
irqlab_accounting(ioapic_and_device ${S}/pci_edu.textproto 0
  "\ninterrupts: 6 raised: device 4 \\(accepted 4\\), ioapic 2 \\(accepted 2\\); accounting holds\n")
irqlab_accounting(ir_faults ${S}/vtd_ir_faults.textproto 0
  "\ninterrupts: 29 raised: device 3 \\(faulted 3\\), ioapic 26 \\(accepted 3, faulted 23\\); accounting holds\n")
irqlab_accounting(hostile_messages ${S}/faults/hostile_messages.textproto 0
  "\ninterrupts: 6 raised: ioapic 4 \\(faulted 4\\), injected 2 \\(faulted 2\\); accounting holds\n")
irqlab_accounting(ath11k_no_fix ${S}/ath11k/assigned_no_fix.textproto 0
  "\ninterrupts: 2 raised: host-device 2 \\(faulted 2\\); accounting holds\n")
irqlab_accounting(ath11k_quirk ${S}/ath11k/assigned_quirk.textproto 0
  "\ninterrupts: 52 raised: vmm-route 26 \\(accepted 26\\), host-device 26 \\(accepted 26\\); accounting holds\n")
irqlab_accounting(ath11k_posted ${S}/ath11k/assigned_guest_owned.textproto 0
  "\ninterrupts: 52 raised: posted-pir 26 \\(accepted 26\\), host-device 26 \\(posted 26\\); accounting holds\n")
irqlab_accounting(injected_drop ${S}/faults/ath11k_drop_htt.textproto 0
  "vmm-route 2 \\(accepted 1, dropped \\(injected\\) 1\\), host-device 2 \\(accepted 2\\); accounting holds\n")
irqlab_accounting(stale_route ${S}/vfio/stale_route.textproto 0
  "vmm-route 5 \\(accepted 4, faulted 1\\), host-device 5 \\(accepted 5\\); accounting holds\n")
# The self-test: every scenario expectation passes, the accounting does not.
irqlab_accounting(vanish_is_a_violation ${CMAKE_CURRENT_SOURCE_DIR}/accounting/vanish.textproto 1
  "interrupts: 4 raised: device 4 \\(accepted 3, lost 1\\); accounting violated: 1 violation, first: t=[0-9]+ device interrupt fee00000/00000040 rid=00:03.0 .*\nFAIL: interrupt accounting holds \\(1 violated: t=[0-9]+ device interrupt fee00000/00000040 rid=00:03.0 \\(compat dest 0x0 vec 0x40 fixed physical edge\\) vanished: .*\\)\n5 passed, 1 failed\n")
# Seed 001: the device's MSI write to an unmapped doorbell is a DMA fault,
# accounted as an interrupt the IOMMU blocked.
irqlab_accounting(doorbell_unmapped ${S}/vfio/doorbell_unmapped.textproto 0
  "\ninterrupts: 1 raised: host-device 1 \\(faulted 1\\); accounting holds\n")

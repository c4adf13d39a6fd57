// Linux-format fault strings for VT-d fault records (see vtd_regs.h).
#include "iommu/vtd_regs.h"

#include <iterator>
#include <string>
#include <string_view>

#include "absl/strings/str_format.h"

namespace irqlab::vtd {
namespace {

// drivers/iommu/intel/dmar.c, irq_remap_fault_reasons[] (0x20-0x26).
constexpr std::string_view kIrReasons[] = {
    "Detected reserved fields in the decoded interrupt-remapped request",
    "Interrupt index exceeded the interrupt-remapping table size",
    "Present field in the IRTE entry is clear",
    "Error accessing interrupt-remapping table pointed by IRTA_REG",
    "Detected reserved fields in the IRTE entry",
    "Blocked a compatibility format interrupt request",
    "Blocked an interrupt request due to source-id verification failure",
};

// drivers/iommu/intel/dmar.c, dma_remap_fault_reasons[] (legacy mode).
constexpr std::string_view kDmaReasons[] = {
    "Software",
    "Present bit in root entry is clear",
    "Present bit in context entry is clear",
    "Invalid context entry",
    "Access beyond MGAW",
    "PTE Write access is not set",
    "PTE Read access is not set",
    "Next page table ptr is invalid",
    "Root table address invalid",
    "Context table ptr is invalid",
    "non-zero reserved fields in RTP",
    "non-zero reserved fields in CTP",
    "non-zero reserved fields in PTE",
    "PCE for translation request specifies blocking",
};

}  // namespace

std::string_view LinuxFaultReasonString(uint8_t reason) {
  if (IsLinuxInterruptRemapReason(reason)) return kIrReasons[reason - 0x20];
  if (reason < std::size(kDmaReasons)) return kDmaReasons[reason];
  return "Unknown";
}

std::string LinuxFaultLine(const FaultRecord& record) {
  const unsigned bus = record.source_id >> 8;
  const unsigned slot = (record.source_id >> 3) & 0x1F;
  const unsigned func = record.source_id & 7;
  const std::string_view reason = LinuxFaultReasonString(record.reason);
  if (IsLinuxInterruptRemapReason(record.reason)) {
    return absl::StrFormat(
        "DMAR: [INTR-REMAP] Request device [%02x:%02x.%d] fault index 0x%x "
        "[fault reason 0x%02x] %s",
        bus, slot, func, record.interrupt_index(), record.reason,
        std::string(reason));
  }
  // Everything else (DMA reasons and reasons Linux does not know, such as
  // the posted-descriptor reason 0x27) takes the DMA branch of
  // dmar_fault_do_one(), with the page address of the record.
  const std::string kind = record.read ? "DMA Read" : "DMA Write";
  const std::string pasid =
      record.pasid_present ? absl::StrFormat("PASID 0x%x", record.pasid)
                           : std::string("NO_PASID");
  return absl::StrFormat(
      "DMAR: [%s %s] Request device [%02x:%02x.%d] fault addr 0x%x "
      "[fault reason 0x%02x] %s",
      kind, pasid, bus, slot, func, record.Low(), record.reason,
      std::string(reason));
}

}  // namespace irqlab::vtd

// SriovNic ("irqlab-nic"): a synthetic SR-IOV-style Ethernet physical
// function whose PF/firmware mailbox depends on the function's MSI-X state —
// the device behaviour behind seed 004 ("some drivers enable MSI-X, then use
// interfaces to send commands between VF & PF or PF & firmware that act
// based on the host state of the device").
//
// PCI identity: 1337:0010, revision 1, class 0x020000 (Ethernet
// controller), subsystem 1337:0010, INTA#. 0x1337 is irqlab's private test
// vendor id (see devices/irqlab_testdev.h); no real driver matches it. The
// layout is modelled on Intel's igb physical functions (82576 8086:10C9,
// I350 8086:1521): register BAR0, MSI-X table and PBA in BAR3, MSI at 0x50,
// MSI-X at 0x70. The SR-IOV extended capability and the VFs themselves are
// not modelled: "SR-IOV-style" is the PF/firmware mailbox.
//
// BARs:
//   BAR0  128 KiB 32-bit MMIO: the registers below
//   BAR3  16 KiB 32-bit MMIO: MSI-X table at 0x0000 (8 entries), PBA at
//         0x2000 (as igb)
// Capabilities: MSI at 0x50 (1 vector, 64-bit, per-vector masking), MSI-X
// at 0x70 (8 entries; entry 0 is the "other causes"/mailbox vector, as
// igb's).
//
// Registers (BAR0; 4-byte accesses only — other sizes read all-ones, writes
// are ignored; unknown offsets read 0):
//   0x0000 RO  id 0x3043494E ("NIC0" in little-endian ASCII)
//   0x0008 RO  status: bit 0 = MSI-X enabled on this function (what the
//              firmware sees: through vfio, the HOST state, not the guest's)
//   0x0C00 WO  MBX_REQ: a write starts a firmware transaction with that
//              request word (ignored, and traced, while one is in flight)
//   0x0C04 RW  MBX_STATUS: bit 0 BUSY (RO, a request is in flight), bit 1
//              DONE (write 1 to clear): an answer is in MBX_RESP
//   0x0C08 RO  MBX_RESP: the firmware's answer, request | 0x80000000
//   0x0C0C RO  MBX_STATS: bits 15:0 requests answered, 31:16 requests
//              dropped (diagnostics; a real driver never sees this)
//   0x1520 WO  EICS: interrupt cause set — bit i set in EICR and MSI-X entry
//              i signalled (igb's software trigger; bits 7:0)
//   0x1580 RW  EICR: interrupt causes, write 1 to clear (bit 0 = mailbox)
//
// The firmware (the bug seed 004 hits): a request is processed
// Options::mailbox_latency ticks after the MBX_REQ write (an EventQueue
// event). At that moment, if MSI-X is enabled on the function (Message
// Control Enable; `msix_enabled()`), the firmware writes MBX_RESP, sets
// DONE and EICR bit 0, and signals MSI-X entry 0 (masked entries latch
// their PBA bit as usual). If MSI-X is NOT enabled, the request is silently
// dropped: BUSY clears, DONE never sets, nothing is signalled — the driver
// can only time out. Drops are counted in MBX_STATS and traced (DEVICE).
//
// Interrupts (EICS, mailbox): MSI-X when enabled; else the mailbox answer
// is not sent at all (above) and EICS uses MSI vector 0 if MSI is enabled,
// else INTx (level = EICR != 0).
#ifndef IRQLAB_DEVICES_SRIOV_NIC_H_
#define IRQLAB_DEVICES_SRIOV_NIC_H_

#include <cstdint>

#include "emu/core/event_queue.h"
#include "emu/core/io.h"
#include "pci/pci_function.h"

namespace irqlab {

class SriovNic : public PciFunction, public IoHandler {
 public:
  static constexpr uint16_t kVendorId = 0x1337;
  static constexpr uint16_t kDeviceId = 0x0010;
  static constexpr uint32_t kId = 0x3043494E;  // "NIC0"
  static constexpr uint64_t kRegBarSize = 128 << 10;
  static constexpr int kMsixBar = 3;
  static constexpr uint64_t kMsixBarSize = 16 << 10;
  static constexpr uint32_t kMsixTableOffset = 0x0000;
  static constexpr uint32_t kMsixPbaOffset = 0x2000;
  static constexpr unsigned kMsixVectors = 8;
  static constexpr uint16_t kMsiCapOffset = 0x50;
  static constexpr uint16_t kMsixCapOffset = 0x70;
  static constexpr unsigned kMailboxVector = 0;

  static constexpr uint64_t kRegId = 0x0000;
  static constexpr uint64_t kRegStatus = 0x0008;
  static constexpr uint64_t kRegMbxReq = 0x0C00;
  static constexpr uint64_t kRegMbxStatus = 0x0C04;
  static constexpr uint64_t kRegMbxResp = 0x0C08;
  static constexpr uint64_t kRegMbxStats = 0x0C0C;
  static constexpr uint64_t kRegEics = 0x1520;
  static constexpr uint64_t kRegEicr = 0x1580;

  static constexpr uint32_t kStatusMsixEnabled = 1u << 0;
  static constexpr uint32_t kMbxBusy = 1u << 0;
  static constexpr uint32_t kMbxDone = 1u << 1;
  static constexpr uint32_t kMbxAck = 0x80000000u;

  struct Options {
    uint64_t mailbox_latency = 2000;  // ticks from MBX_REQ to the answer
  };

  // `events` schedules the firmware's answers (not owned).
  explicit SriovNic(EventQueue* events) : SriovNic(events, Options()) {}
  SriovNic(EventQueue* events, const Options& options);
  ~SriovNic() override;

  // BAR0.
  uint64_t Read(const AccessOrigin& origin, uint64_t offset, unsigned size) override;
  void Write(const AccessOrigin& origin, uint64_t offset, unsigned size,
             uint64_t value) override;

  uint32_t mailbox_answered() const { return answered_; }
  uint32_t mailbox_dropped() const { return dropped_; }
  bool mailbox_busy() const { return mbx_status_ & kMbxBusy; }

 private:
  void StartRequest(uint32_t request);
  void FinishRequest();
  // Sets EICR bits and signals them (see the file comment).
  void RaiseCauses(uint32_t causes);

  EventQueue* const events_;
  const Options options_;
  uint32_t request_ = 0;
  uint32_t mbx_status_ = 0;
  uint32_t mbx_resp_ = 0;
  uint32_t eicr_ = 0;
  uint32_t answered_ = 0;
  uint32_t dropped_ = 0;
  EventId mbx_event_ = EventQueue::kInvalidEventId;
};

}  // namespace irqlab

#endif  // IRQLAB_DEVICES_SRIOV_NIC_H_

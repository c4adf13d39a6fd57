// fuzz_vfio: device assignment seen from a hostile guest. A physical
// function (irqlab-testdev: MSI + MSI-X; or the irqlab-nic: MSI-X) sits on
// the host (HostPlatform: host VT-d with IR on, host IRQ/IRTE allocation),
// vfio-pci passes it to the VMM, and the guest-visible AssignedPciDevice is
// on the guest's PciTestbed with an IrqRouteTable delivering to a recording
// guest APIC. The guest writes anything to the virtualized config space (MSI
// capability, MSI-X control), to the emulated MSI-X table and PBA, and to
// the passed-through BARs; the physical device fires its vectors; the event
// queue runs for a bounded time. The fix (none / NOVIRT quirk / IMS /
// guest-owned) and the MSI-X policy come from the input. Whatever the
// guest does, the interrupt accounting (emu/core/irq_ledger.h) of the physical
// device's MSIs and of the VMM's routed interrupts must hold.
//
// Input: one config byte, then ops (see the switch below).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "devices/irqlab_testdev.h"
#include "devices/sriov_nic.h"
#include "emu/machine/host_platform.h"
#include "emu/core/io.h"
#include "emu/core/irq_ledger.h"
#include "pci/assigned_device.h"
#include "pci/pci_regs.h"
#include "pci/pci_testing.h"
#include "pci/vfio.h"
#include "tests/fuzz/fuzz_util.h"

namespace irqlab {
namespace {

constexpr uint16_t kDevRid = 0x0200;  // 02:00.0 on the host
constexpr uint8_t kSlot = 6;          // guest 00:06.0
constexpr size_t kMaxEventSteps = 200;

}  // namespace
}  // namespace irqlab

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace irqlab;
  fuzz::Reader in(data, size);
  const uint8_t cfg = in.U8();

  PciTestbed tb;
  fuzz::FormattingSink trace_sink;
  if (cfg & 0x80) tb.tracer.AddSink(&trace_sink);
  RecordingMsiSink guest_apic;
  HostConfig hc;
  hc.compat_format = cfg & 0x40;
  absl::StatusOr<std::unique_ptr<HostPlatform>> host =
      HostPlatform::Create(hc, tb.ram.get(), &tb.events, &tb.events, &tb.tracer);
  FUZZ_CHECK(host.ok());
  IrqLedger ledger(&tb.events);
  (*host)->AccountDeviceInterrupts(&ledger);
  IrqRouteTable routes(&guest_apic, nullptr, &tb.tracer, &tb.events);
  routes.set_ledger(&ledger);
  std::unique_ptr<PciFunction> phys;
  const bool nic = cfg & 1;
  if (nic) {
    phys = std::make_unique<SriovNic>(&tb.events);
  } else {
    phys = std::make_unique<IrqlabTestDev>();
  }
  FUZZ_CHECK((*host)->AddDevice(phys.get(), kDevRid).ok());
  VfioPciDevice vfio(phys.get(), &(*host)->memory(), host->get(), &tb.tracer, &tb.events);
  AssignmentOptions options;
  options.fix = static_cast<AssignmentOptions::Fix>((cfg >> 1) & 3);
  options.msix_policy = static_cast<AssignmentOptions::MsixPolicy>((cfg >> 3) & 3);
  if (options.fix == AssignmentOptions::Fix::kIms ||
      options.fix == AssignmentOptions::Fix::kNovirtQuirk) {
    options.source_offsets = {0x100, 0x200};
    options.window_base = 0x100;
    options.window_size = 0x200;
  }
  if (cfg & 0x20) vfio.set_msi_novirt(true);
  absl::StatusOr<std::unique_ptr<AssignedPciDevice>> created =
      AssignedPciDevice::Create(&vfio, &routes, options);
  if (!created.ok()) return 0;  // e.g. a fix this device cannot have
  AssignedPciDevice& guest = **created;
  FUZZ_CHECK(tb.host.AddFunction(kSlot, 0, &guest).ok());
  FUZZ_CHECK(tb.host.AssignResources().ok());
  tb.host.ConfigWrite(0, kSlot, 0, pci::kCommand, 2, 0x0006);
  const AccessOrigin cpu = AccessOrigin::Cpu(0);
  size_t steps = 0;

  auto bar_base = [&](int bar) -> std::optional<uint64_t> { return guest.BarMappedAt(bar); };
  while (!in.empty()) {
    const uint8_t op = in.U8();
    switch (op % 10) {
      case 0: {  // guest config write anywhere
        const uint16_t reg = in.U16() & 0xFFF;
        const unsigned sz = 1u << (in.U8() % 3);
        const uint32_t value = in.U32();
        if ((reg & 3) + sz <= 4) tb.host.ConfigWrite(0, kSlot, 0, reg, sz, value);
        break;
      }
      case 1: {  // guest config read anywhere
        const uint16_t reg = in.U16() & 0xFFF;
        const unsigned sz = 1u << (in.U8() % 3);
        if ((reg & 3) + sz <= 4) {
          FUZZ_CHECK(fuzz::FitsSize(tb.host.ConfigRead(0, kSlot, 0, reg, sz), sz));
        }
        break;
      }
      case 2: {  // the capability area (MSI at 0x40/0x50, MSI-X at 0x58/0x70)
        const uint16_t reg = 0x40 + (in.U8() % 0x40);
        const unsigned sz = 1u << (in.U8() % 3);
        const uint32_t value = in.U32();
        if ((reg & 3) + sz <= 4) tb.host.ConfigWrite(0, kSlot, 0, reg, sz, value);
        break;
      }
      case 3: {  // guest BAR write (passed through, or the emulated table)
        const int bar = in.U8() % pci::kNumBars;
        const uint64_t offset = in.U16() & 0x3FFF;
        const unsigned sz = in.Size();
        const uint64_t value = in.U64();
        if (auto b = bar_base(bar)) tb.mem.Write(cpu, *b + offset, sz, value);
        break;
      }
      case 4: {  // guest BAR read
        const int bar = in.U8() % pci::kNumBars;
        const uint64_t offset = in.U16() & 0x3FFF;
        const unsigned sz = in.Size();
        if (auto b = bar_base(bar)) FUZZ_CHECK(fuzz::FitsSize(tb.mem.Read(cpu, *b + offset, sz), sz));
        break;
      }
      case 5: {  // guest MSI-X table dword (dense)
        MsixCapability* x = guest.msix();
        const uint8_t e = in.U8();
        const uint8_t field = in.U8() & 0xC;
        const uint32_t value = in.U32();
        if (x == nullptr) break;
        if (auto b = bar_base(x->options().table_bar)) {
          tb.mem.Write(cpu, *b + x->options().table_offset + (e % (x->vectors() + 2)) * 16 + field,
                       4, value);
        }
        break;
      }
      case 6: {  // the physical device fires
        const unsigned n = in.U8();
        if (in.Bool()) {
          (void)phys->SignalMsix(n);
        } else {
          (void)phys->SignalMsi(n);
        }
        break;
      }
      case 7: {  // time passes
        const uint64_t dt = uint64_t{in.U16()} << (in.U8() % 20);
        if (steps < kMaxEventSteps) {
          steps += fuzz::RunBounded(tb.events, tb.events.now() + dt, kMaxEventSteps - steps);
        }
        break;
      }
      case 8: {  // Command register (bus master / memory decode toggles)
        tb.host.ConfigWrite(0, kSlot, 0, pci::kCommand, 2, in.U16() & 0x0507);
        break;
      }
      case 9: {  // a device register write through the guest BAR0 (FIRE,
                 // NIC mailbox/EICS) or the source window the fixes trap
        static constexpr uint64_t kRegs[] = {0x04, 0x10, 0x0C00, 0x1520, 0x100, 0x108, 0x200, 0x208};
        const uint64_t reg = kRegs[in.U8() % 8];
        if (auto b = bar_base(0)) tb.mem.Write(cpu, *b + reg, 4, in.U32());
        break;
      }
    }
  }
  FUZZ_CHECK(ledger.holds());
  return 0;
}

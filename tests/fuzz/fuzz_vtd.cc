// fuzz_vtd: one VT-d remapping unit wired as the machine wires it (the
// DmaRemapper behind its hooks, a RemappingDmaSink in front of a
// RootComplex whose MSI window leads back into the unit), with a small guest
// RAM that holds whatever tables the input writes: the interrupt remapping
// table, the invalidation queue, root/context/paging tables and posted-
// interrupt descriptors.
//
// The guest is hostile: register accesses of every offset of the page and
// sizes 1/2/4/8, arbitrary table contents, table pointers anywhere. Helper
// ops program the usual sequences (SIRTP + QIE + IRE, SRTP + TE) and place
// IRTEs/descriptors/context entries where the unit will look, so the fuzzer
// reaches deep states quickly. Interrupts come in as remappable or
// compatibility MSIs (directly or as device DMA writes into the window),
// DMA as translations and reads/writes through the remapping sink.
//
// Work per input is bounded: RAM is 128 KiB (so one pass over the queue is
// at most 8192 descriptors) and at most kMaxQueueKicks writes of IQT, IQA
// and FSTS (the registers that give the queue new work) are honoured.
//
// Input: two config bytes, then ops (see the switch below).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "apic/apic_bus.h"
#include "apic/apic_regs.h"
#include "apic/local_apic.h"
#include "emu/core/clock.h"
#include "emu/core/event_queue.h"
#include "emu/core/guest_ram.h"
#include "emu/core/msi.h"
#include "emu/core/msi_sink.h"
#include "emu/core/trace.h"
#include "iommu/dma_remap.h"
#include "iommu/vtd_regs.h"
#include "iommu/vtd_unit.h"
#include "pci/root_complex.h"
#include "tests/fuzz/fuzz_util.h"

namespace irqlab {
namespace {

constexpr uint64_t kRamSize = 128 << 10;
constexpr uint64_t kPages = kRamSize >> 12;
constexpr int kMaxQueueKicks = 64;

struct Rig {
  EventQueue clock;
  Tracer tracer;
  fuzz::FormattingSink trace_sink;
  // The APIC side: a real bus with two APICs (posting notifications and
  // remapped messages, x2APIC destinations included, end there).
  ApicBus apic{&clock, &tracer};
  std::unique_ptr<LocalApic> lapics[2];
  std::unique_ptr<GuestRam> ram;
  std::unique_ptr<VtdUnit> unit;
  std::unique_ptr<vtd::DmaRemapper> remapper;
  std::unique_ptr<RootComplex> root;
  std::unique_ptr<vtd::RemappingDmaSink> dma;
  int queue_kicks = 0;
  // Interrupt accounting: requests handed to the unit (Signal/Remap, and
  // device writes into the window through the root complex) and faults
  // reported to it from outside interrupt remapping (RecordFault).
  uint64_t requests = 0;
  uint64_t recorded_elsewhere = 0;

  uint32_t Read32(uint64_t offset) {
    return static_cast<uint32_t>(unit->Read(AccessOrigin::Cpu(0), offset, 4));
  }
  uint64_t Read64(uint64_t offset) {
    return unit->Read(AccessOrigin::Cpu(0), offset, 8);
  }
  void Write(uint64_t offset, unsigned size, uint64_t value) {
    // Writes that give the invalidation queue new work (IQT, IQA, and FSTS
    // clearing IQE, which resumes it) process up to a whole queue each:
    // bound how many an input may do. (Other kicks, e.g. GCMD writes, find
    // the queue empty or stopped by IQE.)
    const auto touches = [&](uint64_t reg, uint64_t len) {
      return offset < reg + len && offset + size > reg;
    };
    if (touches(vtd::kIqtReg, 16) || touches(vtd::kFstsReg, 4)) {
      if (++queue_kicks > kMaxQueueKicks) return;
    }
    unit->Write(AccessOrigin::Cpu(0), offset, size, value);
  }
  // GCMD write that changes one command, as 11.4.4.1 tells software to.
  void Command(uint32_t bit, bool on) {
    uint32_t v = Read32(vtd::kGstsReg) & ~vtd::Gcmd::kOneShot;
    v = on ? (v | bit) : (v & ~bit);
    Write(vtd::kGcmdReg, 4, v);
  }
  void Store64(uint64_t addr, uint64_t v) {
    if (ram->Contains(addr, 8)) ram->Store<uint64_t>(addr, v);
  }
};

}  // namespace
}  // namespace irqlab

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace irqlab;
  fuzz::Reader in(data, size);
  const uint8_t cfg0 = in.U8();
  const uint8_t cfg1 = in.U8();

  Rig r;
  if (cfg0 & 0x80) r.tracer.AddSink(&r.trace_sink);
  r.ram = std::move(GuestRam::Create(kRamSize)).value();
  for (int i = 0; i < 2; ++i) {
    LocalApicConfig lc;
    lc.cpu = i;
    lc.apic_id = i == 0 ? 0 : 0x100;  // an x2APIC-only id on CPU 1
    lc.bsp = i == 0;
    r.lapics[i] = std::make_unique<LocalApic>(lc, &r.clock, &r.clock, &r.tracer,
                                              LocalApicCallbacks{});
    r.apic.Attach(r.lapics[i].get());
    // Enabled (x2APIC mode) and software-enabled, as an OS leaves them.
    (void)r.lapics[i]->WriteApicBase(r.lapics[i]->apic_base() | apic::kApicBaseEn |
                                     apic::kApicBaseExtd);
    (void)r.lapics[i]->WriteMsr(apic::kMsrX2apicSvr, 0x1FF);
  }
  VtdConfig vc;
  vc.num_fault_records = 1 + (cfg1 & 7);
  vc.interrupt_remapping = !(cfg0 & 1);
  vc.extended_interrupt_mode = !(cfg0 & 2);
  vc.posted_interrupts = cfg0 & 4;
  vc.queued_invalidation = !(cfg0 & 8) || !vc.interrupt_remapping;
  vc.pass_through = !(cfg0 & 0x10);
  vc.enhanced_sirtp = cfg0 & 0x20;
  static constexpr uint32_t kIecCapacities[4] = {65536, 0, 1, 4};
  vc.iec_capacity = kIecCapacities[(cfg1 >> 3) & 3];
  vc.nd = (cfg1 >> 5) & 7;
  absl::StatusOr<std::unique_ptr<VtdUnit>> unit =
      VtdUnit::Create(vc, &r.apic, r.ram.get(), &r.clock, &r.tracer);
  if (!unit.ok()) return 0;
  r.unit = std::move(*unit);
  VtdUnit& u = *r.unit;

  vtd::DmaRemapOptions ro = vtd::DmaRemapOptionsFromCap(u.cap().raw, u.ecap().raw);
  if (cfg0 & 0x40) {  // tiny caches: exercise the flush-on-full paths
    ro.context_cache_capacity = 2;
    ro.iotlb_capacity = 3;
  }
  r.remapper = std::make_unique<vtd::DmaRemapper>(r.ram.get(), ro);
  r.root = std::make_unique<RootComplex>(r.ram.get(), &u, &r.tracer, &r.clock);
  r.dma = std::make_unique<vtd::RemappingDmaSink>(
      r.remapper.get(), r.root.get(),
      [&u, &r](const vtd::DmaFault& f) {
        ++r.recorded_elsewhere;
        u.RecordFault(vtd::FaultRecord::Dma(f.rid, f.address, /*read=*/!f.write,
                                            static_cast<uint8_t>(f.reason)));
      },
      &r.tracer, &r.clock);
  u.SetDmaHooks(vtd::MakeDmaHooks(r.remapper.get(), r.dma.get()));
  uint64_t iec_invalidations = 0;
  u.set_iec_listener([&](bool, uint32_t, uint8_t) { ++iec_invalidations; });

  while (!in.empty()) {
    const uint8_t op = in.U8();
    switch (op & 0x0F) {
      case 0: {  // register write, any offset and size
        const uint64_t offset = in.U16() & 0xFFF;
        const unsigned sz = in.Size();
        const uint64_t value = in.U64();
        if (offset + sz <= vtd::kRegisterFileSize) r.Write(offset, sz, value);
        break;
      }
      case 1: {  // register read, any offset and size
        const uint64_t offset = in.U16() & 0xFFF;
        const unsigned sz = in.Size();
        if (offset + sz > vtd::kRegisterFileSize) break;
        FUZZ_CHECK(fuzz::FitsSize(u.Read(AccessOrigin::Cpu(0), offset, sz), sz));
        break;
      }
      case 2: {  // aligned dword write of one of the first 64 registers
        r.Write((in.U8() & 0x3F) * 4, 4, in.U32());
        break;
      }
      case 3: {  // guest RAM bytes
        const uint64_t addr = (uint64_t{in.U16()} * 2) % kRamSize;
        absl::Span<const uint8_t> b = in.Bytes(in.U8() % 64);
        const uint64_t n = std::min<uint64_t>(b.size(), kRamSize - addr);
        std::memcpy(r.ram->data() + addr, b.data(), n);
        break;
      }
      case 4: {  // interrupt remapping on: IRTA, SIRTP, IQA, QIE, IRE (, CFI)
        const uint8_t a = in.U8();
        const uint8_t b = in.U8();
        const uint64_t irta = ((a % kPages) << 12) | (b & 0xF) | ((b & 0x10) ? vtd::Irta::kEime : 0);
        r.Write(vtd::kIrtaReg, 8, irta);
        r.Command(vtd::Gcmd::kSirtp, true);
        const uint64_t iqa = ((in.U8() % kPages) << 12) | ((b & 0x20) ? vtd::Iqa::kDw : 0) |
                             ((b >> 6) & 3);
        r.Write(vtd::kIqaReg, 8, iqa);
        r.Command(vtd::Gcmd::kQie, true);
        r.Command(vtd::Gcmd::kIre, true);
        if (a & 0x80) r.Command(vtd::Gcmd::kCfi, true);
        break;
      }
      case 5: {  // one GCMD command on or off
        r.Command(1u << (23 + in.U8() % 9), in.Bool());
        break;
      }
      case 6: {  // IRTE at the latched table, index within 2^(S+1)
        const vtd::Irta irta = u.irta();
        const uint32_t index = in.U16() % irta.entries();
        const uint64_t lo = in.U64();
        const uint64_t hi = in.U64();
        r.Store64(irta.base() + 16ull * index, lo | 1);  // mostly present
        r.Store64(irta.base() + 16ull * index + 8, hi & 0xFFFFFFFF000FFFFFull);
        break;
      }
      case 7: {  // descriptors at IQT, then advance IQT
        const uint64_t iqa = r.Read64(vtd::kIqaReg);
        const uint64_t base = iqa & ~uint64_t{0xFFF};
        const uint64_t dsz = (iqa & vtd::Iqa::kDw) ? 32 : 16;
        const uint64_t qbytes = uint64_t{4096} << (iqa & 7);
        uint64_t tail = r.Read64(vtd::kIqtReg) & vtd::kIqOffsetMask;
        const int n = 1 + in.U8() % 4;
        for (int i = 0; i < n; ++i) {
          // A valid type most of the time (1..5), anything otherwise.
          const uint8_t t = in.U8();
          uint64_t qw0 = in.U64();
          qw0 = (t & 0x80) ? qw0 : ((qw0 & ~uint64_t{0xE0F}) | (1 + t % 5));
          uint64_t qw1 = in.U64();
          if (t & 0x40) qw1 = 0;
          r.Store64(base + tail, qw0);
          r.Store64(base + tail + 8, qw1);
          if (dsz == 32) {
            r.Store64(base + tail + 16, 0);
            r.Store64(base + tail + 24, 0);
          }
          tail = (tail + dsz) % qbytes;
        }
        r.Write(vtd::kIqtReg, 8, tail);
        break;
      }
      case 8: {  // remappable MSI
        const uint16_t handle = in.U16();
        const uint8_t f = in.U8();
        const uint16_t sub = in.U16();
        MsiMessage m = MsiMessage::Remappable(handle, f & 1, sub, in.U16());
        if (f & 2) m.data |= uint32_t{in.U16()} << 16;
        if (f & 4) m.address |= 3;  // don't-care bits
        ++r.requests;
        u.Signal(m);
        break;
      }
      case 9: {  // any MSI-window write (compatibility or not)
        const uint32_t low = in.U32();
        const uint32_t d = in.U32();
        ++r.requests;
        u.Signal(MsiMessage(MsiMessage::kWindowBase | (low & 0xFFFFF), d, in.U16()));
        break;
      }
      case 10: {  // Remap() + DeliverRemapped(), as a route cache does
        const uint32_t low = in.U32();
        const uint32_t d = in.U32();
        ++r.requests;
        RemapResult res =
            u.Remap(MsiMessage(MsiMessage::kWindowBase | (low & 0xFFFFF), d, in.U16()));
        if (res.kind == RemapResult::kRemapped ||
            res.kind == RemapResult::kPassThrough) {
          u.DeliverRemapped(res);
        }
        break;
      }
      case 11: {  // DMA remapping on: root table, root + context entries, TE
        const uint64_t rta = (in.U8() % kPages) << 12;
        const uint8_t bus = in.U8();
        const uint8_t devfn = in.U8();
        const uint64_t ctp = (in.U8() % kPages) << 12;
        r.Store64(rta + 16ull * bus, ctp | 1);
        r.Store64(rta + 16ull * bus + 8, 0);
        const uint64_t slpt = (in.U8() % kPages) << 12;
        const uint8_t aw = in.U8() % 4;             // 39, 48, 57 bits (or bad)
        const uint16_t did = in.U16();
        const uint8_t tt = in.U8() & 3;
        r.Store64(ctp + 16ull * devfn, slpt | (uint64_t{tt} << 2) | 1);
        r.Store64(ctp + 16ull * devfn + 8, aw | (uint64_t{did} << 8));
        r.Write(vtd::kRtaddrReg, 8, rta);
        r.Command(vtd::Gcmd::kSrtp, true);
        // Register-based global invalidations (ignored with QIES=1).
        r.Write(vtd::kCcmdReg, 8, vtd::Ccmd::kIcc | (uint64_t{1} << vtd::Ccmd::kCirgShift));
        r.Write(vtd::kIotlbReg, 8,
                vtd::IotlbReg::kIvt | (uint64_t{1} << vtd::IotlbReg::kIirgShift));
        r.Command(vtd::Gcmd::kTe, true);
        break;
      }
      case 12: {  // a second-level paging entry somewhere in RAM
        const uint64_t page = in.U8() % kPages;
        const uint64_t slot = in.U16() % 512;
        const uint64_t target = (in.U8() % kPages) << 12;
        const uint64_t flags = in.U16();
        r.Store64((page << 12) + 8 * slot, target | (flags & 0x8FF) |
                                                ((flags & 0x1000) ? 3 : 0));
        break;
      }
      case 13: {  // a translation and a DMA through the remapping sink
        const uint16_t rid = in.U16();
        const uint64_t addr = in.U64() >> (in.U8() & 63);
        const uint8_t f = in.U8();
        vtd::TranslateResult t = r.remapper->Translate(
            rid, addr, f & 1, (f & 2) ? vtd::AddressType::kTranslated
                                      : vtd::AddressType::kUntranslated);
        if (t.ok) FUZZ_CHECK(t.page_size >= 4096);
        uint8_t buf[64];
        const size_t len = 1 + (f >> 2) % sizeof(buf);
        std::memset(buf, f, sizeof(buf));
        if (f & 0x80) {
          (void)r.dma->Write(rid, addr, absl::MakeSpan(buf, len));
        } else {
          (void)r.dma->Read(rid, addr, absl::MakeSpan(buf, len));
        }
        break;
      }
      case 14: {  // posted-interrupt descriptor / guest-owned MSI setup
        const uint8_t f = in.U8();
        if (f & 1) {
          u.set_guest_owned(in.U16(), in.U16());
        } else if (f & 2) {
          u.clear_guest_owned(in.U16());
        } else {
          const uint64_t pd = (in.U16() * 64ull) % kRamSize;
          r.Store64(pd + vtd::PostedDescriptor::kControlOffset, in.U64());
        }
        break;
      }
      case 15: {  // software services the faults; the clock moves
        r.Write(vtd::kFstsReg, 4, r.Read32(vtd::kFstsReg));
        const int n = vc.num_fault_records;
        for (int i = 0; i < n; ++i) {
          r.Write(vtd::kFaultRecordsOffset + 16ull * i + 12, 4, 0x80000000u);
        }
        r.Write(vtd::kFectlReg, 4, in.Bool() ? 0 : vtd::EventControl::kIm);
        r.clock.RunUntil(r.clock.now() + in.U8());
        if (in.Bool()) {
          ++r.recorded_elsewhere;
          u.RecordFault(vtd::FaultRecord::Dma(in.U16(), in.U64(), in.Bool(), in.U8()));
        }
        break;
      }
    }
    FUZZ_CHECK(u.iec_size() <= std::max<uint32_t>(vc.iec_capacity, 0));
    // Nothing vanishes: every interrupt request was passed through,
    // remapped, posted, or blocked by a fault (recorded or not).
    const VtdStats& st = u.stats();
    FUZZ_CHECK(st.faults >= r.recorded_elsewhere);
    FUZZ_CHECK(st.passed_through + st.remapped + st.posted +
                   (st.faults - r.recorded_elsewhere) ==
               r.requests + r.root->msi_writes());
    FUZZ_CHECK((u.fsts() & 0xFFFF0000u) == 0);
  }
  (void)iec_invalidations;
  return 0;
}

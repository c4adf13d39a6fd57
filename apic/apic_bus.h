// ApicBus: the system bus between interrupt sources and the local APICs
// (Intel SDM vol. 3, 11.6.2 "Determining IPI Destination", 11.6.2.4
// "Lowest Priority Delivery Mode", 11.11 "Message Signalled Interrupts",
// 11.12.10 "x2APIC logical destination mode"). It is the end of the MSI
// delivery chain (an MsiSink) and the router of IPIs (an IpiSink).
//
// Destination decode (per APIC, on its own current mode and registers; only
// APICs with IA32_APIC_BASE.EN=1 are on the bus):
//   physical  the destination equals the APIC id (8-bit xAPIC id, or the
//             32-bit x2APIC id). 0xFF is broadcast for 8-bit destinations
//             (xAPIC IPIs and compatibility-format MSIs, also to APICs in
//             x2APIC mode, as KVM does); 0xFFFFFFFF for x2APIC IPIs.
//   logical   xAPIC flat model (DFR[31:28] = 1111b): LDR[31:24] & MDA != 0.
//             xAPIC cluster model (0000b): cluster MDA[7:4] == LDR[31:28]
//             (cluster 0xF = all clusters) and MDA[3:0] & LDR[27:24] != 0.
//             x2APIC: cluster DEST[31:16] == LDR[31:16] and
//             DEST[15:0] & LDR[15:0] != 0; 0xFFFFFFFF is broadcast. An 8-bit
//             logical MSI to an x2APIC-mode APIC is compared as a 32-bit
//             x2APIC logical destination in cluster 0 (0xFF: broadcast).
//   shorthand (IPIs) self, all including self, all excluding self.
//
// Lowest priority arbitration (deterministic; the SDM leaves it to the
// chipset on Pentium 4 and later): among the matched APICs that are
// software enabled (all of them if none is), a "focus" APIC (SVR[9] = 0 and
// the vector already in its IRR or ISR, 11.6.2.4) wins; otherwise the one
// with the lowest PPR, ties broken by the lowest APIC id, then the lowest
// CPU index. It applies to delivery mode "lowest priority", and to an MSI
// with redirection hint RH=1 and logical destination mode (11.11.1).
//
// MSIs (SDM 11.11): a compatibility-format message in 0xFEE00000-0xFEEFFFFF.
// A remappable-format message (address bit 4 = 1) that reaches the bus
// directly has no destination (its address bits 19:5 are an IRTE handle,
// VT-d 5.1.2.2): without an IOMMU in front it is dropped and traced. Address
// bits 11:5 are reserved and ignored unless the "extended destination ID"
// option is on; then (physical mode only) they are APIC id bits 14:8, so
// x2APIC ids up to 0x7FFF are reachable without interrupt remapping.
// Delivery modes 011b and 110b are reserved in MSIs and are dropped; SMI and
// ExtINT go to the destination APIC, which traces and ignores/rejects them.
// The MSI "level" bit (data bit 14) is ignored: a message is an assertion.
//
// Every message is traced (APIC_ROUTE with the destination CPUs, or
// MSI_DROPPED / IPI with the reason); a message that matches no APIC is a
// lost interrupt and is always traced.
//
// Not thread-safe (the machine runs on one host thread). The APICs are not
// owned.
#ifndef IRQLAB_APIC_APIC_BUS_H_
#define IRQLAB_APIC_APIC_BUS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "apic/local_apic.h"
#include "emu/core/clock.h"
#include "emu/core/msi.h"
#include "emu/core/msi_sink.h"
#include "emu/core/trace.h"

namespace irqlab {

struct ApicBusConfig {
  // Honour MSI address bits 11:5 as destination id bits 14:8 (the KVM /
  // Hyper-V "extended destination ID" convention, see MsiMessage).
  bool extended_destination_id = false;
};

// A destination as the bus compares it against each APIC.
struct ApicDestination {
  uint32_t id = 0;       // physical id / logical MDA
  bool logical = false;
  bool wide = false;     // 32-bit x2APIC destination (x2APIC ICR)
};

class ApicBus : public MsiSink, public IpiSink {
 public:
  // `clock` timestamps traces; `tracer` may be null. Not owned.
  ApicBus(const Clock* clock, Tracer* tracer, ApicBusConfig config = {});
  ApicBus(const ApicBus&) = delete;
  ApicBus& operator=(const ApicBus&) = delete;

  // Puts `apic` (not owned, must outlive the bus's use) on the bus and makes
  // the bus its IpiSink. REQUIRES: one APIC per CPU index.
  void Attach(LocalApic* apic);
  // The APIC of vCPU `cpu`, or nullptr.
  LocalApic* apic(int cpu) const;
  // Attached APICs in CPU-index order.
  const std::vector<LocalApic*>& apics() const { return apics_; }

  // MsiSink: see the file comment.
  // The outcome is the best of the targets' (LocalApic::Accept), or
  // kDiscarded when no APIC can take the message (traced as MSI_DROPPED).
  MsiOutcome Signal(const MsiMessage& message) override;
  // A 32-bit x2APIC destination from the interrupt remapping unit.
  MsiOutcome SignalX2Apic(const MsiMessage& message, uint32_t destination) override;
  // IpiSink: routes an ICR-sent IPI.
  void SendIpi(const Ipi& ipi) override;
  // Invalidates the physical and logical destination indexes.
  void PhysicalIdChanged() override { physical_index_valid_ = false; }

  // CPU accesses to the xAPIC page, for the machine's MMIO dispatch (the
  // page is per CPU and relocatable): nullopt / false when `cpu`'s APIC
  // does not decode `addr` (disabled, x2APIC mode, other address) and the
  // access must go to the rest of the address space.
  std::optional<uint64_t> MmioRead(int cpu, uint64_t addr, unsigned size);
  bool MmioWrite(int cpu, uint64_t addr, unsigned size, uint64_t value);

  // Whether `apic` matches `dest` (no shorthand), per the file comment.
  static bool Matches(const LocalApic& apic, const ApicDestination& dest);

 private:
  // Enabled APICs matching `dest`, in CPU order.
  // Matching APICs; inline storage keeps the MSI fast path allocation-free.
  using ApicList = absl::InlinedVector<LocalApic*, 8>;
  ApicList Decode(const ApicDestination& dest) const;
  // False (traced as dropped) for messages the bus cannot deliver: outside
  // the interrupt window, remappable format, reserved delivery mode.
  bool Admissible(const MsiMessage& m);
  // Decodes `dest`, arbitrates, traces and delivers `m`'s vector and modes.
  MsiOutcome Route(const MsiMessage& m, const ApicDestination& dest, bool ignored_bits);
  // Enabled APICs with physical id `id`, from an index rebuilt after any
  // APIC's id or IA32_APIC_BASE changed (the MSI fast path: O(1) for any
  // number of CPUs).
  const ApicList& PhysicalMatches(uint32_t id) const;
  // Enabled APICs matching logical destination `dest` (not the broadcast),
  // in CPU order: the x2APIC-mode APICs of the destination's cluster from
  // an index, plus a scan of the xAPIC-mode APICs (guest-written LDR/DFR).
  ApicList LogicalMatches(const ApicDestination& dest) const;
  // Rebuilds physical_index_, x2apic_clusters_ and xapic_enabled_.
  void BuildIndexes() const;
  LocalApic* ArbitrateLowestPriority(const ApicList& candidates,
                                     uint8_t vector) const;
  static std::string CpuList(const ApicList& targets);
  void Trace(Stage stage, int cpu, const std::string& detail, int vector,
             uint64_t address, uint64_t data, uint32_t rid);

  const ApicBusConfig config_;
  const Clock* clock_;
  Tracer* tracer_;
  std::vector<LocalApic*> apics_;  // sorted by cpu()
  // apic(cpu) in O(1): indexed by cpu() (>= 0), nullptr where none attached.
  std::vector<LocalApic*> by_cpu_;
  // Caches for PhysicalMatches() and LogicalMatches(), valid together while
  // physical_index_valid_; see PhysicalIdChanged(). They depend on each
  // APIC's enable, mode, id and (x2APIC mode) LDR, which change only through
  // IA32_APIC_BASE writes, xAPIC ID writes and resets; LocalApic reports
  // each of those.
  mutable absl::flat_hash_map<uint32_t, ApicList> physical_index_;
  // x2APIC-mode APICs by LDR[31:16] (cluster), in CPU order, with their
  // LDR[15:0].
  struct ClusterMember {
    uint16_t ldr_bits;
    LocalApic* apic;
  };
  mutable absl::flat_hash_map<uint32_t, std::vector<ClusterMember>> x2apic_clusters_;
  // Enabled APICs in xAPIC mode, in CPU order.
  mutable std::vector<LocalApic*> xapic_enabled_;
  mutable bool physical_index_valid_ = false;
};

}  // namespace irqlab

#endif  // IRQLAB_APIC_APIC_BUS_H_

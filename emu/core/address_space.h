// AddressSpace: a bus of non-overlapping ranges [base, base+size), each
// decoded to one IoHandler. Used for the guest physical MMIO space and for the
// 64 KiB x86 I/O port space (SDM vol. 1, 18.3 "I/O address space").
//
// Rules (the rust-vmm/vm-device range bus, made strict):
//   * Map() refuses empty, wrapping, out-of-space and overlapping ranges; the
//     error message names both ranges of an overlap.
//   * An access is dispatched only if its size is 1, 2, 4 or 8 bytes and it
//     lies entirely inside one range; the handler sees the offset from the
//     range's base. Anything else is rejected *at the bus*: a read returns
//     all-ones of the access size (AllOnes(size); for an illegal size, 64-bit
//     all-ones ~0), a write is dropped, and the rejection is traced (Stage
//     MMIO_UNMAPPED or PORT_UNMAPPED, chosen at construction). This is what a
//     PC does for a master abort on an unclaimed cycle; an access straddling
//     two devices is split by real CPUs, but the devices modelled here never
//     rely on that, so the bus reports it instead of guessing.
//
// Not modelled: RAM (GuestRam is mapped directly into the vCPU engine),
// access splitting, byte enables, priorities/overlays (QEMU's MemoryRegion
// layering). Overlap is always an error.
//
// Example:
//
//   AddressSpace ports("io", AddressSpace::kPortSpaceLimit,
//                      trace::PORT_UNMAPPED, &tracer, &clock);
//   RETURN_IF_ERROR(ports.Map(0x3f8, 8, &uart, "serial"));
//   ports.Write(AccessOrigin::Cpu(0), 0x3f8, 1, 'A');  // uart offset 0
//   uint64_t v = ports.Read(AccessOrigin::Cpu(0), 0x80, 1);  // 0xff, traced
//
// Thread-compatible: const methods may run concurrently; Read/Write/Map/
// Unmap need external synchronization (the machine runs on one host thread).
#ifndef IRQLAB_EMU_CORE_ADDRESS_SPACE_H_
#define IRQLAB_EMU_CORE_ADDRESS_SPACE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "emu/core/clock.h"
#include "emu/core/io.h"
#include "emu/core/trace.h"

namespace irqlab {

class AddressSpace {
 public:
  // One mapped range. Stable address while mapped (std::map node).
  struct Range {
    uint64_t base = 0;
    uint64_t size = 0;
    IoHandler* handler = nullptr;
    std::string name;

    // One past the last byte. Never wraps (Map() refuses wrapping ranges).
    uint64_t end() const { return base + size; }
    bool Contains(uint64_t addr) const { return addr >= base && addr < end(); }
  };

  // The x86 I/O port space: ports 0x0000-0xFFFF.
  static constexpr uint64_t kPortSpaceLimit = 0x10000;
  // Physical memory: x86 MAXPHYADDR is at most 52 bits (SDM vol. 3, 4.1.4).
  static constexpr uint64_t kPhysicalSpaceLimit = uint64_t{1} << 52;

  // `name` labels the space in traces ("mem", "io"). Addresses must be below
  // `limit` (REQUIRES: limit > 0). Rejected accesses are traced as
  // `unmapped_stage` through `tracer` (may be null: no trace) with timestamps
  // from `clock` (may be null: time 0). Neither is owned; both must outlive
  // this object.
  AddressSpace(std::string name, uint64_t limit, trace::Stage unmapped_stage,
               Tracer* tracer = nullptr, const Clock* clock = nullptr);

  AddressSpace(const AddressSpace&) = delete;
  AddressSpace& operator=(const AddressSpace&) = delete;

  // Maps [base, base+size) to `handler` (not owned; must stay valid until
  // Unmap() or destruction).
  // Returns OK on success. On failure nothing changes and returns
  //   InvalidArgument  size == 0, base+size wraps around 2^64, the range
  //                    reaches beyond limit(), or handler is null;
  //   AlreadyExists    the range overlaps a mapped one; the message names
  //                    both, e.g.
  //                    "serial" [0x3f8, 0x400) overlaps "foo" [0x3f0, 0x3f9)
  absl::Status Map(uint64_t base, uint64_t size, IoHandler* handler,
                   std::string name);

  // Removes the range starting exactly at `base`. NotFound if there is none.
  absl::Status Unmap(uint64_t base);

  // The range containing `addr`, or nullptr. O(log n).
  const Range* Find(uint64_t addr) const;

  // Bus accesses by `origin`. `size` is the access width in bytes. See the
  // file comment for what is rejected; rejected reads return AllOnes(size)
  // for sizes 1/2/4/8 and ~0 (64-bit all-ones) for an illegal size.
  // A dispatched access performs no allocation.
  uint64_t Read(const AccessOrigin& origin, uint64_t addr, unsigned size);
  void Write(const AccessOrigin& origin, uint64_t addr, unsigned size,
             uint64_t value);

  // Calls `fn` for each range in ascending address order. `fn` must not
  // Map/Unmap.
  void ForEachRange(const std::function<void(const Range&)>& fn) const;

  // "name" [0xbase, 0xend) — the form used in error messages and listings.
  static std::string FormatRange(const Range& range);

  const std::string& name() const { return name_; }
  uint64_t limit() const { return limit_; }
  size_t num_ranges() const { return ranges_.size(); }
  // Accesses rejected at the bus so far (traced or not).
  uint64_t rejected_accesses() const { return rejected_accesses_; }

  static bool IsLegalAccessSize(unsigned size) {
    return size == 1 || size == 2 || size == 4 || size == 8;
  }

 private:
  // The range that fully contains [addr, addr+size), or nullptr.
  // REQUIRES: IsLegalAccessSize(size).
  const Range* Decode(uint64_t addr, unsigned size);
  // Counts and (if enabled) traces a rejected access.
  void Reject(const AccessOrigin& origin, uint64_t addr, unsigned size,
              uint64_t data, bool is_write);

  // Static configuration.
  const std::string name_;
  const uint64_t limit_;
  const trace::Stage unmapped_stage_;
  Tracer* const tracer_;
  const Clock* const clock_;

  // Ranges keyed by base; non-overlapping.
  std::map<uint64_t, Range> ranges_;
  // Last range an access hit (a one-entry decode cache; devices are accessed
  // in bursts). Reset by Map/Unmap.
  const Range* last_hit_ = nullptr;
  uint64_t rejected_accesses_ = 0;
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_CORE_ADDRESS_SPACE_H_

// Tests of emu/core/address_space.h: the range bus for MMIO and port I/O.
#include "emu/core/address_space.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace irqlab {
namespace {

using ::testing::HasSubstr;

// Records every access it receives; reads return a pattern derived from the
// offset so tests can tell which offset was dispatched.
class RecordingHandler : public IoHandler {
 public:
  struct Access {
    bool is_write;
    int cpu;
    uint16_t rid;
    uint64_t offset;
    unsigned size;
    uint64_t value;
  };

  uint64_t Read(const AccessOrigin& origin, uint64_t offset,
                unsigned size) override {
    accesses.push_back({false, origin.cpu, origin.requester_id, offset, size, 0});
    return (0x1100 + offset) & AllOnes(size);
  }
  void Write(const AccessOrigin& origin, uint64_t offset, unsigned size,
             uint64_t value) override {
    accesses.push_back(
        {true, origin.cpu, origin.requester_id, offset, size, value});
  }

  std::vector<Access> accesses;
};

AddressSpace MakePorts(Tracer* tracer = nullptr, const Clock* clock = nullptr) {
  return AddressSpace("io", AddressSpace::kPortSpaceLimit, trace::PORT_UNMAPPED,
                      tracer, clock);
}

// Overlap is always an error, and the message names both ranges so the
// scenario author sees which two devices collide.
TEST(AddressSpaceTest, OverlappingRangeIsRejectedWithBothNames) {
  AddressSpace io = MakePorts();
  RecordingHandler foo, serial;
  ASSERT_TRUE(io.Map(0x3f0, 9, &foo, "foo").ok());
  absl::Status s = io.Map(0x3f8, 8, &serial, "serial");
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(),
              HasSubstr("\"serial\" [0x3f8, 0x400) overlaps \"foo\" [0x3f0, 0x3f9)"));
  EXPECT_EQ(io.num_ranges(), 1u);
}

// Overlap against the following range (the new range starts below an
// existing one and runs into it) and full containment are caught too.
TEST(AddressSpaceTest, OverlapWithNextRangeAndContainmentAreRejected) {
  AddressSpace io = MakePorts();
  RecordingHandler h;
  ASSERT_TRUE(io.Map(0x60, 1, &h, "kbd-data").ok());
  ASSERT_TRUE(io.Map(0x64, 1, &h, "kbd-cmd").ok());
  absl::Status s = io.Map(0x5f, 2, &h, "wide");
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(), HasSubstr("\"wide\" [0x5f, 0x61) overlaps "
                                     "\"kbd-data\" [0x60, 0x61)"));
  EXPECT_EQ(io.Map(0x0, 0x1000, &h, "all").code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(io.Map(0x64, 1, &h, "same").code(),
            absl::StatusCode::kAlreadyExists);
  // Adjacent ranges touch but do not overlap ([a, b) is half-open).
  EXPECT_TRUE(io.Map(0x61, 3, &h, "between").ok());
  EXPECT_TRUE(io.Map(0x65, 1, &h, "after").ok());
  EXPECT_EQ(io.num_ranges(), 4u);
}

// Zero size, wrap-around and ranges beyond the space (ports end at 0xFFFF,
// SDM vol. 1, 18.3) are invalid arguments.
TEST(AddressSpaceTest, EmptyWrappingAndOutOfSpaceRangesAreInvalid) {
  AddressSpace io = MakePorts();
  RecordingHandler h;
  EXPECT_EQ(io.Map(0x80, 0, &h, "empty").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(io.Map(0xfffc, 8, &h, "tail").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(io.Map(0x10000, 1, &h, "past").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(io.Map(0x80, 1, nullptr, "null").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(io.Map(0xfffc, 4, &h, "last").ok());  // ends exactly at limit

  AddressSpace mem("mem", ~uint64_t{0}, trace::MMIO_UNMAPPED);
  absl::Status wrap = mem.Map(~uint64_t{0} - 3, 8, &h, "wrap");
  EXPECT_EQ(wrap.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wrap.message(), HasSubstr("wraps"));
  EXPECT_EQ(io.num_ranges(), 1u);
}

// A mapped access reaches the handler with the offset inside the range, the
// size and the origin unchanged.
TEST(AddressSpaceTest, AccessIsDispatchedWithOffsetInsideRange) {
  AddressSpace mem("mem", AddressSpace::kPhysicalSpaceLimit,
                   trace::MMIO_UNMAPPED);
  RecordingHandler apic;
  ASSERT_TRUE(mem.Map(0xfee00000, 0x1000, &apic, "lapic").ok());
  EXPECT_EQ(mem.Read(AccessOrigin::Cpu(1), 0xfee00030, 4), 0x1130u);
  mem.Write(AccessOrigin::Device(0x0200), 0xfee000b0, 4, 0);
  ASSERT_EQ(apic.accesses.size(), 2u);
  EXPECT_FALSE(apic.accesses[0].is_write);
  EXPECT_EQ(apic.accesses[0].cpu, 1);
  EXPECT_EQ(apic.accesses[0].offset, 0x30u);
  EXPECT_EQ(apic.accesses[0].size, 4u);
  EXPECT_TRUE(apic.accesses[1].is_write);
  EXPECT_EQ(apic.accesses[1].cpu, AccessOrigin::kNoCpu);
  EXPECT_EQ(apic.accesses[1].rid, 0x0200);
  EXPECT_EQ(apic.accesses[1].offset, 0xb0u);
  EXPECT_EQ(mem.rejected_accesses(), 0u);
}

// An access to nothing reads all-ones of its size and a write is dropped
// (master abort on an unclaimed cycle), and both are traced with the origin,
// address, data and size.
TEST(AddressSpaceTest, UnmappedAccessReadsAllOnesAndIsTraced) {
  Tracer tracer;
  TraceRecorder recorder;
  tracer.AddSink(&recorder);
  ManualClock clock;
  clock.Set(1234);
  AddressSpace io = MakePorts(&tracer, &clock);
  EXPECT_EQ(io.Read(AccessOrigin::Cpu(2), 0x80, 1), 0xffu);
  EXPECT_EQ(io.Read(AccessOrigin::Cpu(2), 0x80, 2), 0xffffu);
  EXPECT_EQ(io.Read(AccessOrigin::Cpu(2), 0x80, 4), 0xffffffffu);
  io.Write(AccessOrigin::Device(0x0208), 0xcf8, 4, 0x80000000);
  ASSERT_EQ(recorder.events().size(), 4u);
  const TraceEvent& read = recorder.events()[0];
  EXPECT_EQ(read.stage(), trace::PORT_UNMAPPED);
  EXPECT_EQ(read.time(), 1234u);
  EXPECT_EQ(read.cpu(), 2);
  EXPECT_EQ(read.address(), 0x80u);
  EXPECT_EQ(read.data(), 0xffu);
  EXPECT_EQ(read.vector(), -1);
  EXPECT_EQ(read.detail(), "io read size=1: nothing mapped, reads all-ones");
  const TraceEvent& write = recorder.events()[3];
  EXPECT_EQ(write.cpu(), -1);
  EXPECT_EQ(write.requester_id(), 0x0208u);
  EXPECT_EQ(write.data(), 0x80000000u);
  EXPECT_EQ(write.detail(), "io write size=4: nothing mapped, dropped");
  EXPECT_EQ(io.rejected_accesses(), 4u);
}

// The memory space traces as MMIO_UNMAPPED (the stage is chosen at
// construction), and an 8-byte unmapped read is 64-bit all-ones.
TEST(AddressSpaceTest, MemorySpaceTracesMmioUnmapped) {
  Tracer tracer;
  TraceRecorder recorder;
  tracer.AddSink(&recorder);
  AddressSpace mem("mem", AddressSpace::kPhysicalSpaceLimit,
                   trace::MMIO_UNMAPPED, &tracer, /*clock=*/nullptr);
  EXPECT_EQ(mem.Read(AccessOrigin::Cpu(0), 0xfed00000, 8), ~uint64_t{0});
  ASSERT_EQ(recorder.events().size(), 1u);
  EXPECT_EQ(recorder.events()[0].stage(), trace::MMIO_UNMAPPED);
  EXPECT_EQ(recorder.events()[0].time(), 0u);  // no clock: time 0
}

// An access that does not fit entirely inside one range is rejected at the
// bus even though its first byte is mapped: the handler never sees an access
// beyond its range (io.h contract).
TEST(AddressSpaceTest, AccessCrossingRangeEndIsRejected) {
  Tracer tracer;
  TraceRecorder recorder;
  tracer.AddSink(&recorder);
  AddressSpace io = MakePorts(&tracer);
  RecordingHandler uart, next;
  ASSERT_TRUE(io.Map(0x3f8, 8, &uart, "serial").ok());
  ASSERT_TRUE(io.Map(0x400, 8, &next, "next").ok());
  EXPECT_EQ(io.Read(AccessOrigin::Cpu(0), 0x3fe, 4), 0xffffffffu);
  io.Write(AccessOrigin::Cpu(0), 0x3ff, 2, 0x1234);
  EXPECT_TRUE(uart.accesses.empty());
  EXPECT_TRUE(next.accesses.empty());
  ASSERT_EQ(recorder.events().size(), 2u);
  EXPECT_THAT(recorder.events()[0].detail(),
              HasSubstr("crosses the end of \"serial\" [0x3f8, 0x400)"));
  // The last byte itself is fine.
  EXPECT_EQ(io.Read(AccessOrigin::Cpu(0), 0x3ff, 1), 0x07u);
  ASSERT_EQ(uart.accesses.size(), 1u);
  EXPECT_EQ(uart.accesses[0].offset, 7u);
}

// Only 1, 2, 4 and 8-byte accesses exist on the bus; any other size is
// rejected even inside a range. Reads of an illegal size return 64-bit
// all-ones (documented in address_space.h).
TEST(AddressSpaceTest, IllegalAccessSizeIsRejectedEvenInsideRange) {
  Tracer tracer;
  TraceRecorder recorder;
  tracer.AddSink(&recorder);
  AddressSpace mem("mem", AddressSpace::kPhysicalSpaceLimit,
                   trace::MMIO_UNMAPPED, &tracer);
  RecordingHandler h;
  ASSERT_TRUE(mem.Map(0x1000, 0x1000, &h, "dev").ok());
  for (unsigned size : {0u, 3u, 5u, 6u, 7u, 9u, 16u}) {
    EXPECT_EQ(mem.Read(AccessOrigin::Cpu(0), 0x1000, size), ~uint64_t{0})
        << "size " << size;
    mem.Write(AccessOrigin::Cpu(0), 0x1000, size, 0);
  }
  EXPECT_TRUE(h.accesses.empty());
  EXPECT_EQ(recorder.events().size(), 14u);
  EXPECT_THAT(recorder.events()[0].detail(), HasSubstr("illegal access size"));
}

// With no sink attached the tracer is disabled: nothing is built, but the
// rejection is still counted.
TEST(AddressSpaceTest, DisabledTracerRecordsNothingButCounts) {
  Tracer tracer;  // no sinks
  AddressSpace io = MakePorts(&tracer);
  EXPECT_EQ(io.Read(AccessOrigin::Cpu(0), 0x70, 1), 0xffu);
  EXPECT_EQ(io.rejected_accesses(), 1u);
}

// Unmap removes exactly the range starting at `base`; afterwards its
// addresses are unmapped (and the decode cache does not resurrect it).
TEST(AddressSpaceTest, UnmapRemovesRangeAndUnknownBaseIsNotFound) {
  AddressSpace io = MakePorts();
  RecordingHandler h;
  ASSERT_TRUE(io.Map(0x3f8, 8, &h, "serial").ok());
  EXPECT_EQ(io.Read(AccessOrigin::Cpu(0), 0x3f8, 1), 0x00u);  // warms cache
  EXPECT_EQ(io.Unmap(0x3f9).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(io.Unmap(0x3f8).ok());
  EXPECT_EQ(io.Find(0x3f8), nullptr);
  EXPECT_EQ(io.Read(AccessOrigin::Cpu(0), 0x3f8, 1), 0xffu);
  EXPECT_EQ(h.accesses.size(), 1u);
  // The space is free again.
  EXPECT_TRUE(io.Map(0x3f8, 8, &h, "serial2").ok());
}

// Find() returns the containing range, nullptr in gaps and at a range's end
// (exclusive).
TEST(AddressSpaceTest, FindReturnsContainingRangeOnly) {
  AddressSpace io = MakePorts();
  RecordingHandler h;
  ASSERT_TRUE(io.Map(0x20, 2, &h, "pic1").ok());
  ASSERT_TRUE(io.Map(0xa0, 2, &h, "pic2").ok());
  EXPECT_EQ(io.Find(0x1f), nullptr);
  ASSERT_NE(io.Find(0x21), nullptr);
  EXPECT_EQ(io.Find(0x21)->name, "pic1");
  EXPECT_EQ(io.Find(0x22), nullptr);
  ASSERT_NE(io.Find(0xa0), nullptr);
  EXPECT_EQ(io.Find(0xa0)->name, "pic2");
  EXPECT_EQ(io.Find(0xffff), nullptr);
}

// ForEachRange lists ranges in ascending address order, whatever the order
// of Map() calls (for `irqlab --help`-style listings).
TEST(AddressSpaceTest, ForEachRangeListsInAddressOrder) {
  AddressSpace io = MakePorts();
  RecordingHandler h;
  ASSERT_TRUE(io.Map(0x3f8, 8, &h, "serial").ok());
  ASSERT_TRUE(io.Map(0x20, 2, &h, "pic").ok());
  ASSERT_TRUE(io.Map(0xcf8, 8, &h, "pci").ok());
  std::vector<std::string> listing;
  io.ForEachRange([&](const AddressSpace::Range& r) {
    listing.push_back(AddressSpace::FormatRange(r));
  });
  EXPECT_THAT(listing, ::testing::ElementsAre("\"pic\" [0x20, 0x22)",
                                              "\"serial\" [0x3f8, 0x400)",
                                              "\"pci\" [0xcf8, 0xd00)"));
}

// Fuzz: random Map/Unmap/access sequences (fixed seed) against a byte-level
// model. Invariants: ranges never overlap; Map succeeds iff the model says the
// bytes are free and in bounds; every access reaches the right handler at the
// right offset iff it lies wholly inside one range with a legal size,
// otherwise it reads all-ones.
TEST(AddressSpaceTest, RandomOperationsMatchByteLevelModel) {
  constexpr uint64_t kLimit = 0x400;
  AddressSpace space("fuzz", kLimit, trace::MMIO_UNMAPPED);
  std::vector<RecordingHandler> handlers(64);
  std::vector<int> owner(kLimit, -1);  // byte -> handler index
  std::vector<uint64_t> bases(handlers.size(), 0);
  std::mt19937_64 rng(20240611);
  int mapped = 0, dispatched = 0, rejected = 0;
  for (int step = 0; step < 20000; ++step) {
    const int op = rng() % 4;
    if (op == 0) {
      const int id = rng() % handlers.size();
      if (bases[id] != 0) continue;  // already mapped (base 0 unused)
      const uint64_t base = 1 + rng() % (kLimit + 8);
      const uint64_t size = rng() % 24;
      bool free = size > 0 && base + size <= kLimit;
      for (uint64_t a = base; free && a < base + size; ++a) {
        free = owner[a] == -1;
      }
      absl::Status s = space.Map(base, size, &handlers[id], "h");
      ASSERT_EQ(s.ok(), free) << s << " base " << base << " size " << size;
      if (s.ok()) {
        for (uint64_t a = base; a < base + size; ++a) owner[a] = id;
        bases[id] = base;
        ++mapped;
      }
    } else if (op == 1) {
      const int id = rng() % handlers.size();
      if (bases[id] == 0) continue;
      ASSERT_TRUE(space.Unmap(bases[id]).ok());
      for (int& o : owner) {
        if (o == id) o = -1;
      }
      bases[id] = 0;
    } else {
      const uint64_t addr = rng() % (kLimit + 16);
      const unsigned size = rng() % 10;
      bool ok = AddressSpace::IsLegalAccessSize(size) && addr < kLimit &&
                owner[addr] != -1 && addr + size <= kLimit;
      for (uint64_t a = addr; ok && a < addr + size; ++a) {
        ok = owner[a] == owner[addr];
      }
      const int id = ok ? owner[addr] : -1;
      const size_t before = ok ? handlers[id].accesses.size() : 0;
      const uint64_t v = space.Read(AccessOrigin::Cpu(0), addr, size);
      if (ok) {
        ++dispatched;
        ASSERT_EQ(handlers[id].accesses.size(), before + 1);
        EXPECT_EQ(handlers[id].accesses.back().offset, addr - bases[id]);
        EXPECT_EQ(v, (0x1100 + addr - bases[id]) & AllOnes(size));
      } else {
        ++rejected;
        EXPECT_EQ(v, AddressSpace::IsLegalAccessSize(size) ? AllOnes(size)
                                                           : ~uint64_t{0});
      }
    }
    // Invariant: the listing is sorted and non-overlapping.
    uint64_t prev_end = 0;
    space.ForEachRange([&](const AddressSpace::Range& r) {
      EXPECT_GE(r.base, prev_end);
      prev_end = r.end();
    });
  }
  // The loop exercised every outcome.
  EXPECT_GT(mapped, 100);
  EXPECT_GT(dispatched, 100);
  EXPECT_GT(rejected, 100);
}

}  // namespace
}  // namespace irqlab

// Unit tests of the PC platform's small devices (devices/pc_devices.h): the
// QEMU PC-machine contract test kernels rely on.
#include "devices/pc_devices.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace irqlab {
namespace {

using ::testing::ElementsAre;

const AccessOrigin kCpu0 = AccessOrigin::Cpu(0);

class RecordingLineTarget : public IrqLineTarget {
 public:
  void SetLevel(int pin, bool high) override { changes.push_back({pin, high}); }
  std::vector<std::pair<int, bool>> changes;
};

// 16550: LSR.THRE (bit 5) is always set so polled transmit never waits;
// bytes written to THR (DLAB=0) are output, lines are traced.
TEST(Serial16550Test, TransmitsBytesAndTracesCompleteLines) {
  Tracer tracer;
  TraceRecorder rec;
  tracer.AddSink(&rec);
  ManualClock clock;
  clock.Set(42);
  std::string echoed;
  Serial16550 uart({&tracer, &clock}, [&](char c) { echoed.push_back(c); });
  EXPECT_EQ(uart.Read(kCpu0, 5, 1) & 0x20, 0x20u);
  for (char c : std::string("hi\npartial")) uart.Write(kCpu0, 0, 1, c);
  EXPECT_EQ(uart.output(), "hi\npartial");
  EXPECT_EQ(echoed, "hi\npartial");
  ASSERT_EQ(rec.events().size(), 1u);
  EXPECT_EQ(rec.events()[0].stage(), trace::SERIAL);
  EXPECT_EQ(rec.events()[0].detail(), "hi");
  EXPECT_EQ(rec.events()[0].time(), 42u);
  uart.Flush();
  ASSERT_EQ(rec.events().size(), 2u);
  EXPECT_EQ(rec.events()[1].detail(), "partial");
}

// With LCR.DLAB set, offsets 0/1 are the divisor latch, not THR/IER.
TEST(Serial16550Test, DivisorLatchDoesNotTransmit) {
  Serial16550 uart({}, nullptr);
  uart.Write(kCpu0, 3, 1, 0x80);  // DLAB
  uart.Write(kCpu0, 0, 1, 0x01);
  uart.Write(kCpu0, 1, 1, 0x00);
  EXPECT_EQ(uart.Read(kCpu0, 0, 1), 0x01u);
  uart.Write(kCpu0, 3, 1, 0x03);  // 8N1, DLAB off
  EXPECT_EQ(uart.output(), "");
  uart.Write(kCpu0, 7, 1, 0x5A);  // scratch register reads back
  EXPECT_EQ(uart.Read(kCpu0, 7, 1), 0x5Au);
}

// isa-debug-exit: writing v exits with (v << 1) | 1 (QEMU hw/misc/debugexit.c).
TEST(DebugExitTest, ExitStatusIsValueShiftedOrOne) {
  std::vector<int> statuses;
  DebugExit dev({}, [&](int s) { statuses.push_back(s); });
  dev.Write(kCpu0, 0, 4, 0);
  dev.Write(kCpu0, 0, 4, 1);
  dev.Write(kCpu0, 0, 1, 0x10);
  EXPECT_THAT(statuses, ElementsAre(1, 3, 0x21));
}

// pc-testdev: a byte write of 1/0 to 0x2000+n raises/lowers line n.
TEST(PcTestDevIrqTest, ByteWriteRaisesAndLowersLine) {
  PcTestDevIrq dev({});
  RecordingLineTarget target;
  dev.line(5).Connect(&target, 5);
  dev.Write(kCpu0, 5, 1, 1);
  EXPECT_EQ(dev.Read(kCpu0, 5, 1), 1u);
  dev.Write(kCpu0, 5, 1, 0);
  EXPECT_EQ(dev.Read(kCpu0, 5, 1), 0u);
  dev.Write(kCpu0, 5, 2, 1);  // not a byte write: ignored
  EXPECT_THAT(target.changes, ElementsAre(std::make_pair(5, true), std::make_pair(5, false)));
}

// fw_cfg: select with a 16-bit write to 0x510, read bytes from 0x511.
TEST(FwCfgTest, SignatureAndCpuCount) {
  FwCfg fw(4);
  fw.Write(kCpu0, 0, 2, FwCfg::kSignature);
  std::string sig;
  for (int i = 0; i < 4; ++i) sig.push_back(static_cast<char>(fw.Read(kCpu0, 1, 1)));
  EXPECT_EQ(sig, "QEMU");
  fw.Write(kCpu0, 0, 2, FwCfg::kNbCpus);
  const uint64_t lo = fw.Read(kCpu0, 1, 1);
  const uint64_t hi = fw.Read(kCpu0, 1, 1);
  EXPECT_EQ(lo | hi << 8, 4u);
  EXPECT_EQ(fw.Read(kCpu0, 1, 1), 0u);  // past the item: zeros
  fw.Write(kCpu0, 0, 2, 0x1234);        // unknown key reads zeros
  EXPECT_EQ(fw.Read(kCpu0, 1, 1), 0u);
}

// The PIC stub accepts the mask and reads it back; nothing else.
TEST(PicStubTest, MaskReadsBack) {
  PicStub pic;
  EXPECT_EQ(pic.Read(kCpu0, 1, 1), 0xFFu);
  pic.Write(kCpu0, 1, 1, 0xFB);
  EXPECT_EQ(pic.Read(kCpu0, 1, 1), 0xFBu);
}

}  // namespace
}  // namespace irqlab

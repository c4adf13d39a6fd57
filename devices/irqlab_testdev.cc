#include "devices/irqlab_testdev.h"

#include <cstring>

namespace irqlab {

namespace {

PciFunction::Identity TestDevIdentity() {
  return PciFunction::Identity{.vendor_id = IrqlabTestDev::kVendorId,
                               .device_id = IrqlabTestDev::kDeviceId,
                               .class_code = 0x00FF00,
                               .revision = 1,
                               .subsystem_vendor_id = IrqlabTestDev::kVendorId,
                               .subsystem_id = IrqlabTestDev::kDeviceId,
                               .interrupt_pin = 1};
}

}  // namespace

IrqlabTestDev::IrqlabTestDev() : PciFunction("irqlab-testdev", TestDevIdentity()) {
  // Fixed layout: none of these can fail.
  (void)AddBar(0, BarSpec{.type = BarType::kMemory32, .size = kRegBarSize,
                          .handler = this});
  (void)AddBar(1, BarSpec{.type = BarType::kMemory32, .size = kMsixBarSize,
                          .handler = nullptr});
  (void)AddBar(2, BarSpec{.type = BarType::kMemory64, .size = kScratchBarSize,
                          .prefetchable = true, .handler = &scratch_});
  (void)AddBar(4, BarSpec{.type = BarType::kIo, .size = kIoBarSize,
                          .handler = this});
  (void)AddMsiCapability(MsiCapability::Options{.vectors = kMsiVectors,
                                                .address64 = true,
                                                .per_vector_mask = true},
                         kMsiCapOffset);
  (void)AddMsixCapability(MsixCapability::Options{.vectors = kMsixVectors,
                                                  .table_bar = 1,
                                                  .table_offset = kMsixTableOffset,
                                                  .pba_bar = 1,
                                                  .pba_offset = kMsixPbaOffset},
                          kMsixCapOffset);
}

IrqlabTestDev::Mode IrqlabTestDev::mode() const {
  if (msix_enabled()) return kModeMsix;
  if (msi_enabled()) return kModeMsi;
  return kModeIntx;
}

void IrqlabTestDev::Fire(uint32_t n) {
  ++fire_count_;
  switch (mode()) {
    case kModeMsix:
      last_result_ = static_cast<uint32_t>(SignalMsix(n));
      break;
    case kModeMsi:
      last_result_ = static_cast<uint32_t>(SignalMsi(n));
      break;
    case kModeIntx:
      SetIntxLevel(true);
      last_result_ = kResultIntxRaised;
      break;
  }
}

uint64_t IrqlabTestDev::Read(const AccessOrigin&, uint64_t offset,
                             unsigned size) {
  if (size != 4) return AllOnes(size);
  switch (offset) {
    case kRegId:
      return kId;
    case kRegFireCount:
      return fire_count_;
    case kRegSentCount:
      return static_cast<uint32_t>(sent_count());
    case kRegIntx:
      return intx_level() ? 1 : 0;
    case kRegMode:
      return mode();
    case kRegLastResult:
      return last_result_;
    default:
      return 0;
  }
}

void IrqlabTestDev::Write(const AccessOrigin&, uint64_t offset, unsigned size,
                          uint64_t value) {
  if (size != 4) return;
  switch (offset) {
    case kRegFire:
      Fire(static_cast<uint32_t>(value));
      break;
    case kRegFireCount:
      fire_count_ = 0;
      sent_base_ = messages_sent();
      break;
    case kRegIntx:
      SetIntxLevel(value & 1);
      break;
    default:
      break;
  }
}

uint64_t IrqlabTestDev::Scratch::Read(const AccessOrigin&, uint64_t offset,
                                      unsigned size) {
  uint64_t v = 0;
  std::memcpy(&v, bytes_.data() + offset, size);  // the bus keeps it in range
  return v;
}

void IrqlabTestDev::Scratch::Write(const AccessOrigin&, uint64_t offset,
                                   unsigned size, uint64_t value) {
  std::memcpy(bytes_.data() + offset, &value, size);
}

}  // namespace irqlab

// PciCapability: one entry of a function's capability list (PCI 3.0, 6.7)
// that needs to react to guest writes of its registers (MSI, MSI-X).
// The registers themselves live in the function's ConfigSpace with their
// masks; the capability object only keeps derived state and side effects.
#ifndef IRQLAB_PCI_PCI_CAPABILITY_H_
#define IRQLAB_PCI_PCI_CAPABILITY_H_

#include <cstdint>

namespace irqlab {

// What became of one interrupt request of a device model (SignalMsi /
// SignalMsix).
enum class [[nodiscard]] SignalResult {
  kSent,           // the message was written upstream (DmaSink accepted it)
  kPending,        // masked: the pending bit was set (PCI 3.0 6.8.1.7/6.8.2.10)
  kBlocked,        // Bus Master Enable clear, or the upstream write failed:
                   // dropped and traced (PCIe 7.5.1.1.3: BME off disables MSI)
  kDisabled,       // the capability is not enabled (or absent): the device
                   // should use another mechanism; nothing was recorded
  kInvalidVector,  // index beyond what the capability implements: dropped
};

// "sent", "pending", "blocked", "disabled", "invalid-vector".
const char* SignalResultName(SignalResult result);

class PciCapability {
 public:
  PciCapability(uint16_t offset, uint16_t length)
      : offset_(offset), length_(length) {}
  virtual ~PciCapability() = default;
  PciCapability(const PciCapability&) = delete;
  PciCapability& operator=(const PciCapability&) = delete;

  uint16_t offset() const { return offset_; }
  uint16_t length() const { return length_; }
  bool Overlaps(uint32_t offset, unsigned size) const {
    return offset < offset_ + length_ && offset + size > offset_;
  }

  // Called after a guest write that overlapped [offset, offset + length).
  virtual void AfterConfigWrite() = 0;

 private:
  const uint16_t offset_;
  const uint16_t length_;
};

}  // namespace irqlab

#endif  // IRQLAB_PCI_PCI_CAPABILITY_H_

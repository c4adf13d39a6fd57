// Guest physical RAM: one host buffer shared by every vCPU engine (mapped with
// uc_mem_map_ptr) and by host-side code (loader, DMA). Never copied per access.
#ifndef IRQLAB_EMU_CORE_GUEST_RAM_H_
#define IRQLAB_EMU_CORE_GUEST_RAM_H_

#include <cstdint>
#include <cstring>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "emu/core/check.h"

namespace irqlab {

// RAM occupies guest physical [0, size). Thread-compatible.
class GuestRam {
 public:
  // `size` must be a non-zero multiple of 4 KiB (Unicorn maps whole pages).
  static absl::StatusOr<std::unique_ptr<GuestRam>> Create(uint64_t size);
  ~GuestRam();
  GuestRam(const GuestRam&) = delete;
  GuestRam& operator=(const GuestRam&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

  // True iff [addr, addr+len) lies inside RAM (overflow-safe).
  bool Contains(uint64_t addr, uint64_t len) const {
    return addr <= size_ && len <= size_ - addr;
  }
  // Host-side accessors. REQUIRES: Contains(addr, len).
  absl::Span<uint8_t> Slice(uint64_t addr, uint64_t len) {
    IRQLAB_DCHECK(Contains(addr, len));
    return absl::Span<uint8_t>(data_ + addr, len);
  }
  template <typename T>
  T Load(uint64_t addr) const {
    IRQLAB_DCHECK(Contains(addr, sizeof(T)));
    T v;
    std::memcpy(&v, data_ + addr, sizeof(T));
    return v;
  }
  template <typename T>
  void Store(uint64_t addr, T v) {
    IRQLAB_DCHECK(Contains(addr, sizeof(T)));
    std::memcpy(data_ + addr, &v, sizeof(T));
  }

 private:
  GuestRam(uint8_t* data, uint64_t size) : data_(data), size_(size) {}
  uint8_t* data_;
  uint64_t size_;
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_CORE_GUEST_RAM_H_

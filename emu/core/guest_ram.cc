// Guest physical RAM backed by one anonymous private mmap. The pages are
// zero-filled by the kernel and committed lazily, so a large RAM costs nothing
// until the guest touches it.
#include "emu/core/guest_ram.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace irqlab {
namespace {
constexpr uint64_t kPageSize = 4096;
}  // namespace

absl::StatusOr<std::unique_ptr<GuestRam>> GuestRam::Create(uint64_t size) {
  if (size == 0) {
    return absl::InvalidArgumentError("guest RAM size must be non-zero");
  }
  if (size % kPageSize != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "guest RAM size %#x (%u bytes) is not a multiple of 4 KiB", size,
        size));
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    return absl::ResourceExhaustedError(
        absl::StrFormat("cannot allocate %#x bytes of guest RAM: mmap: %s",
                        size, std::strerror(err)));
  }
  return std::unique_ptr<GuestRam>(
      new GuestRam(static_cast<uint8_t*>(p), size));
}

GuestRam::~GuestRam() { munmap(data_, size_); }

}  // namespace irqlab

// Guest kernels built from firmware-stubs/ and embedded in the irqlab binary,
// so `kernel { builtin: "hello" }` works without any file on disk.
#ifndef IRQLAB_FIRMWARE_STUBS_BUILTIN_KERNELS_H_
#define IRQLAB_FIRMWARE_STUBS_BUILTIN_KERNELS_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/types/span.h"

namespace irqlab {

struct BuiltinKernel {
  std::string_view name;               // e.g. "hello"
  std::string_view description;        // one line
  absl::Span<const uint8_t> elf;       // multiboot v1 ELF32 image
};

// All built-in kernels, sorted by name.
absl::Span<const BuiltinKernel> BuiltinKernels();
// nullptr if there is no kernel of that name.
const BuiltinKernel* FindBuiltinKernel(std::string_view name);

}  // namespace irqlab

#endif  // IRQLAB_FIRMWARE_STUBS_BUILTIN_KERNELS_H_

// The WCN6855 device firmware (firmware-stubs/wcn6855/, ARM Thumb for a
// Cortex-M3-like core), cross-compiled with arm-none-eabi-gcc at build time
// and embedded here. The image is a raw ROM image for FirmwareCpu
// (emu/cpu/fw_cpu.h): word 0 initial SP, word 1 reset PC (Thumb), then code.
#ifndef IRQLAB_FIRMWARE_STUBS_WCN6855_FIRMWARE_H_
#define IRQLAB_FIRMWARE_STUBS_WCN6855_FIRMWARE_H_

#include <cstdint>

#include "absl/types/span.h"

namespace irqlab {

// The built-in firmware image (a few hundred bytes, static storage).
absl::Span<const uint8_t> Wcn6855FirmwareImage();

}  // namespace irqlab

#endif  // IRQLAB_FIRMWARE_STUBS_WCN6855_FIRMWARE_H_

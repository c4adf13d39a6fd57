// The built-in guest kernels embedded from firmware-stubs/ are well-formed
// multiboot v1 ELF32 images and can be found by name.
#include "firmware-stubs/builtin_kernels.h"

#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace irqlab {
namespace {

TEST(BuiltinKernelsTest, EveryKernelIsAMultibootElf32) {
  ASSERT_GE(BuiltinKernels().size(), 5u);
  std::string previous;
  for (const BuiltinKernel& k : BuiltinKernels()) {
    SCOPED_TRACE(std::string(k.name));
    EXPECT_LT(previous, std::string(k.name)) << "sorted by name";
    previous = std::string(k.name);
    EXPECT_FALSE(k.description.empty());
    ASSERT_GT(k.elf.size(), 64u);
    EXPECT_EQ(std::memcmp(k.elf.data(), "\x7F" "ELF", 4), 0);
    EXPECT_EQ(k.elf[4], 1) << "ELFCLASS32";
    // Multiboot spec 3.1.1: the header is 32-bit aligned in the first 8 KiB.
    bool found = false;
    for (size_t off = 0; off + 12 <= std::min<size_t>(k.elf.size(), 8192); off += 4) {
      uint32_t w[3];
      std::memcpy(w, k.elf.data() + off, sizeof(w));
      if (w[0] == 0x1BADB002 && w[0] + w[1] + w[2] == 0) found = true;
    }
    EXPECT_TRUE(found) << "multiboot header";
    EXPECT_EQ(FindBuiltinKernel(k.name), &k);
  }
  for (const char* name : {"hello", "exceptions", "inject", "smp", "irqloop"}) {
    EXPECT_NE(FindBuiltinKernel(name), nullptr) << name;
  }
  EXPECT_EQ(FindBuiltinKernel("no-such-kernel"), nullptr);
}

}  // namespace
}  // namespace irqlab

// Scratch files for the tests of emu/run's campaign pieces (shard, results,
// suite): a fresh temporary directory, a whole file read or written, and the
// scenario they run.
#ifndef IRQLAB_TESTS_TEST_FILES_H_
#define IRQLAB_TESTS_TEST_FILES_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace irqlab {

inline constexpr char kHello[] = IRQLAB_SOURCE_DIR "/scenarios/hello.textproto";

// A new, empty directory under the test's temporary directory.
inline std::string TempDir() {
  std::string tmpl = ::testing::TempDir() + "/campaign_test.XXXXXX";
  const char* d = mkdtemp(tmpl.data());
  EXPECT_NE(d, nullptr);
  return tmpl;
}

// The file's bytes ("" if it cannot be read).
inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes `text` to `path`, creating its directories.
inline void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace irqlab

#endif  // IRQLAB_TESTS_TEST_FILES_H_

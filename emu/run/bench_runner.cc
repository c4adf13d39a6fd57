#include "emu/run/bench_runner.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace irqlab {

namespace {
namespace fs = std::filesystem;

fs::path BenchDir() {
  if (const char* d = std::getenv("IRQLAB_BENCH_DIR"); d != nullptr && *d != '\0') return d;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "bench";
  return exe.parent_path().parent_path() / "bench";
}

// Runs `argv` with inherited stdout/stderr; returns its exit status (128 +
// signal when killed).
int Spawn(const std::vector<std::string>& argv) {
  std::cout.flush();
  const pid_t pid = fork();
  if (pid < 0) return 127;
  if (pid == 0) {
    std::vector<char*> a;
    for (const std::string& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execv(a[0], a.data());
    _exit(127);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return 127;
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}
}  // namespace

int BenchMain(const BenchCommand& c) {
  const fs::path dir = BenchDir();
  std::vector<fs::path> programs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (absl::EndsWith(name, "_bench") && e.is_regular_file() &&
        access(e.path().c_str(), X_OK) == 0) {
      programs.push_back(e.path());
    }
  }
  std::sort(programs.begin(), programs.end());
  if (programs.empty()) {
    std::cerr << "irqlab bench: no benchmark programs (*_bench) in " << dir.string()
              << "; build them (ninja -C build) or set IRQLAB_BENCH_DIR\n";
    return 2;
  }
  google::protobuf::Struct merged;
  google::protobuf::ListValue* all = (*merged.mutable_fields())["benchmarks"].mutable_list_value();
  const fs::path tmp = fs::temp_directory_path() / absl::StrFormat("irqlab-bench-%d", getpid());
  fs::create_directories(tmp, ec);
  int failed = 0;
  for (const fs::path& p : programs) {
    const fs::path out = tmp / (p.filename().string() + ".json");
    std::vector<std::string> argv = {p.string(), "--benchmark_out=" + out.string(),
                                     "--benchmark_out_format=json"};
    if (!c.filter.empty()) argv.push_back("--benchmark_filter=" + c.filter);
    if (c.min_time > 0) argv.push_back(absl::StrCat("--benchmark_min_time=", c.min_time));
    std::cout << "== " << p.filename().string() << "\n";
    const int rc = Spawn(argv);
    if (rc != 0) {
      std::cerr << "irqlab bench: " << p.filename().string() << " exited with " << rc << "\n";
      ++failed;
      continue;
    }
    std::ifstream in(out);
    std::stringstream text;
    text << in.rdbuf();
    if (text.str().find_first_not_of(" \t\r\n") == std::string::npos) {
      continue;  // the filter matched nothing in this program: no output
    }
    google::protobuf::Struct one;
    if (!google::protobuf::util::JsonStringToMessage(text.str(), &one).ok()) {
      std::cerr << "irqlab bench: cannot parse " << out.string() << "\n";
      ++failed;
      continue;
    }
    if (!merged.fields().contains("context") && one.fields().contains("context")) {
      (*merged.mutable_fields())["context"] = one.fields().at("context");
    }
    if (one.fields().contains("benchmarks")) {
      for (const google::protobuf::Value& b : one.fields().at("benchmarks").list_value().values()) {
        google::protobuf::Value* v = all->add_values();
        *v = b;
        (*v->mutable_struct_value()->mutable_fields())["program"].set_string_value(
            p.filename().string());
      }
    }
  }
  fs::remove_all(tmp, ec);
  if (!c.json.empty()) {
    std::string json;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    (void)google::protobuf::util::MessageToJsonString(merged, &json, options);
    std::ofstream f(c.json);
    if (!f || !(f << json)) {
      std::cerr << "irqlab bench: --json: cannot write \"" << c.json << "\"\n";
      return 2;
    }
    std::cout << "irqlab bench: " << all->values_size() << " results from " << programs.size()
              << " programs in " << c.json << "\n";
  }
  return failed == 0 ? 0 : 1;
}

}  // namespace irqlab

// `irqlab bench`: runs the Google Benchmark programs of bench/ (built next to
// the irqlab binary: <dir of irqlab>/../bench/*_bench, or $IRQLAB_BENCH_DIR)
// one after the other, shows their console tables, and merges their JSON
// outputs into one file in Google Benchmark's format (the "context" of the
// first program, the "benchmarks" of all, each tagged with "program"), so
// results can be compared across commits with Google Benchmark's
// tools/compare.py.
#ifndef IRQLAB_EMU_RUN_BENCH_RUNNER_H_
#define IRQLAB_EMU_RUN_BENCH_RUNNER_H_

#include <string>

namespace irqlab {

struct BenchCommand {
  std::string filter;    // --benchmark_filter regex ("" = all)
  std::string json;      // merged JSON output ("" = none)
  double min_time = 0;   // --benchmark_min_time in seconds (0 = the default)
};

// Returns 0 when every program ran and exited 0, 1 when one failed, 2 for
// bad input (no benchmark programs found, JSON file not writable).
int BenchMain(const BenchCommand& command);

}  // namespace irqlab

#endif  // IRQLAB_EMU_RUN_BENCH_RUNNER_H_

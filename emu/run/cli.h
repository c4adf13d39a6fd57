// The irqlab command line. See `irqlab --help`.
#ifndef IRQLAB_EMU_RUN_CLI_H_
#define IRQLAB_EMU_RUN_CLI_H_

namespace irqlab {

// Exit codes of the irqlab binary (besides a guest's debug-exit status, which
// is always odd: (v << 1) | 1).
inline constexpr int kExitOk = 0;
inline constexpr int kExitExpectationFailed = 1;
inline constexpr int kExitUsage = 2;       // bad flags, scenario or file
inline constexpr int kExitHostError = 3;   // the emulator or the host failed
inline constexpr int kExitTimeLimit = 124; // like timeout(1)
inline constexpr int kExitHang = 125;
inline constexpr int kExitShutdown = 126;

// Runs the CLI; returns the process exit code.
int IrqlabMain(int argc, char** argv);

// The built-in default scenario (scenarios/demo.textproto, embedded).
extern const char kDefaultScenario[];

}  // namespace irqlab

#endif  // IRQLAB_EMU_RUN_CLI_H_

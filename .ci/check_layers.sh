#!/usr/bin/env bash
# The layering rule of ARCHITECTURE.md, checked on every #include: each folder
# may include its own headers and those of the layers below it, never a layer
# above it or a peer. Run by CTest (test "layering") and so by CI.
#
#   usage: .ci/check_layers.sh [SOURCE_DIR]
# Prints one line per violation (file:line: the include and the rule) and
# exits 1 if there is any; exits 0 and prints a summary otherwise.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

# Folder -> the include prefixes it may use (besides std/third-party <...>).
# A prefix ending in '/' is a folder; otherwise it is one exact header.
declare -A ALLOW=(
  [emu/core]="emu/core/"
  [emu/cpu]="emu/core/ emu/cpu/"
  [apic]="emu/core/ apic/"
  [ioapic]="emu/core/ ioapic/"
  [iommu]="emu/core/ iommu/"
  [pci]="emu/core/ pci/"
  [devices]="emu/core/ pci/ devices/ emu/cpu/fw_cpu.h firmware-stubs/wcn6855_firmware.h"
  [firmware-stubs]="emu/core/ firmware-stubs/"
  [emu/machine]="emu/core/ emu/cpu/ emu/machine/ apic/ ioapic/ iommu/ pci/ devices/ firmware-stubs/"
  [emu/run]="emu/core/ emu/cpu/ emu/machine/ emu/run/ apic/ ioapic/ iommu/ pci/ devices/ firmware-stubs/"
)
# Only emu/cpu/ (and tests, benchmarks) may use the vCPU engine's headers.
ENGINE_OK="emu/cpu"

violations=0
checked=0
for folder in "${!ALLOW[@]}"; do
  [ -d "$folder" ] || { echo "check_layers: no folder $folder" >&2; exit 2; }
  # Host code only: guest programs under firmware-stubs/{programs,runtime,
  # wcn6855} are built for the guest and include their own runtime.
  while IFS= read -r file; do
    # emu/ itself holds only the subfolders; a file directly in emu/ would
    # have no layer.
    checked=$((checked + 1))
    lineno=0
    while IFS= read -r line; do
      lineno=$((lineno + 1))
      case "$line" in
        '#include "'*) ;;
        '#include <unicorn/'*|'#include <capstone/'*)
          if [ "$folder" != "$ENGINE_OK" ]; then
            echo "$file:$lineno: ${line#\#include } — only $ENGINE_OK/ may include the vCPU engine"
            violations=$((violations + 1))
          fi
          continue ;;
        *) continue ;;
      esac
      inc=${line#\#include \"}
      inc=${inc%%\"*}
      # Third-party headers in quotes (absl/..., google/...) are not ours.
      case "$inc" in
        emu/*|apic/*|ioapic/*|iommu/*|pci/*|devices/*|firmware-stubs/*|tests/*|bench/*) ;;
        *) continue ;;
      esac
      ok=0
      for prefix in ${ALLOW[$folder]}; do
        if [[ "$prefix" == */ ]]; then
          [[ "$inc" == "$prefix"* ]] && ok=1
        else
          [[ "$inc" == "$prefix" ]] && ok=1
        fi
      done
      if [ "$ok" = 0 ]; then
        echo "$file:$lineno: includes $inc — $folder/ may include only: ${ALLOW[$folder]}"
        violations=$((violations + 1))
      fi
    done < "$file"
  done < <(find "$folder" -maxdepth 1 -type f \( -name '*.h' -o -name '*.cc' \) | sort)
done

# Private headers: only their own translation units include them.
while IFS=: read -r file lineno _; do
  case "$file" in
    emu/cpu/vcpu*.cc) ;;
    *) echo "$file:$lineno: includes emu/cpu/vcpu_impl.h — private to emu/cpu/vcpu*.cc"
       violations=$((violations + 1)) ;;
  esac
done < <(grep -rn --include='*.h' --include='*.cc' '#include "emu/cpu/vcpu_impl.h"' \
           emu apic ioapic iommu pci devices firmware-stubs tests bench 2>/dev/null || true)

stray=$(find emu -maxdepth 1 -type f \( -name '*.h' -o -name '*.cc' \) | sort)
if [ -n "$stray" ]; then
  echo "$stray" | sed 's/$/: source file directly in emu\/ — put it in one of its layers (core, cpu, machine, run)/'
  violations=$((violations + $(echo "$stray" | wc -l)))
fi

if [ "$violations" -gt 0 ]; then
  echo "check_layers: $violations layering violation(s) (ARCHITECTURE.md, \"Layers\")"
  exit 1
fi
echo "check_layers: $checked files, no layering violations"

// A wire-level interrupt line (ISA IRQ / IOAPIC pin). Devices hold an IrqLine
// and never see GSI numbers; the machine connects the line to a target.
#ifndef IRQLAB_EMU_CORE_IRQ_LINE_H_
#define IRQLAB_EMU_CORE_IRQ_LINE_H_

namespace irqlab {

// Receives level changes of numbered input pins (an IOAPIC, a PIC).
class IrqLineTarget {
 public:
  virtual ~IrqLineTarget() = default;
  virtual void SetLevel(int pin, bool high) = 0;
};

// One line. Unconnected lines are legal: level changes go nowhere.
// Not thread-safe (the machine runs on one host thread).
class IrqLine {
 public:
  IrqLine() = default;
  IrqLine(IrqLineTarget* target, int pin) : target_(target), pin_(pin) {}

  void Connect(IrqLineTarget* target, int pin) { target_ = target; pin_ = pin; }
  void Raise() { Set(true); }
  void Lower() { Set(false); }
  void Set(bool high) {
    level_ = high;
    if (target_ != nullptr) target_->SetLevel(pin_, high);
  }
  bool level() const { return level_; }
  bool connected() const { return target_ != nullptr; }

 private:
  IrqLineTarget* target_ = nullptr;
  int pin_ = 0;
  bool level_ = false;
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_CORE_IRQ_LINE_H_

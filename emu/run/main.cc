#include "emu/run/cli.h"

int main(int argc, char** argv) { return irqlab::IrqlabMain(argc, argv); }

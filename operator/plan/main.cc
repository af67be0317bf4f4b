// waterline-plan: size a PTUReservation from a per-minute token series (docs/waterline.md).
#include <iostream>

#include "waterline/plan/plan_cli.h"

int main(int argc, char** argv) {
  return waterline::plan::main(std::vector<std::string>(argv + (argc > 0 ? 1 : 0), argv + argc), std::cout,
                               std::cerr);
}

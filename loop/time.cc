#include "eddy/loop/time.h"

namespace eddy {

std::shared_ptr<Clock> SteadyClock::shared() {
  // Never destroyed: loops owned by thread_locals may outlive static
  // destructors at exit.
  static auto* clock = new std::shared_ptr<Clock>(std::make_shared<SteadyClock>());
  return *clock;
}

}  // namespace eddy

// A consumer's program: offload a blocking call, await it on the loop.
#include <cstdio>
#include <thread>

#include "eddy/eddy.h"  // all of eddy; or name the headers you use

eddy::Future<int> answer() {
  eddy::IOLoop& loop = eddy::IOLoop::current();
  int blocking_result = co_await loop.run_in_executor(nullptr, [] {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // a blocking call
    return 42;
  });
  co_return blocking_result;
}

int main() {
  int v = eddy::IOLoop::current().run_sync(answer);
  std::printf("eddy says %d\n", v);
  return v == 42 ? 0 : 1;
}

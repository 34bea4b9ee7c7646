// How the eddy benchmarks offload a call from the loop to a pool and get a
// loop Future back: IOLoop::run_in_executor, the public API for it. One
// place to change if that API moves.
//
// Threading: call on the loop's thread, with the loop current.
#ifndef EDDY_BENCH_EDDY_OFFLOAD_H_
#define EDDY_BENCH_EDDY_OFFLOAD_H_

#include <utility>

#include "eddy/executor/thread_pool_executor.h"
#include "eddy/loop/io_loop.h"

namespace eddy::bench {

template <class F>
auto offload(IOLoop& loop, ThreadPoolExecutor& pool, F&& fn) {
  return loop.run_in_executor(&pool, std::forward<F>(fn));
}

}  // namespace eddy::bench

#endif  // EDDY_BENCH_EDDY_OFFLOAD_H_

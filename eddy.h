// eddy in one include: every public header of the library, for code that
// depends on //:eddy and would rather not name the headers one by one.
//
//   #include "eddy/eddy.h"
//
// Including it costs the compile time of all of them; a translation unit
// that wants less includes only what it uses (each type's header is named in
// the README). Either way, a coroutine returning eddy::Future needs
// coroutine.h, which this header brings in.
#ifndef EDDY_EDDY_H_
#define EDDY_EDDY_H_

// Futures: the single-threaded Future, the thread-safe ConcurrentFuture,
// errors, logging, and coroutines.
#include "eddy/futures/concurrent_future.h"  // IWYU pragma: export
#include "eddy/futures/concurrent_wait.h"    // IWYU pragma: export
#include "eddy/futures/coroutine.h"          // IWYU pragma: export
#include "eddy/futures/errors.h"             // IWYU pragma: export
#include "eddy/futures/future.h"             // IWYU pragma: export
#include "eddy/futures/log.h"                // IWYU pragma: export
#include "eddy/futures/source_location.h"    // IWYU pragma: export

// Combinators: multi (lists, maps, tuples), first_completed, WaitIterator,
// callback adapters.
#include "eddy/futures/callback_adapters.h"  // IWYU pragma: export
#include "eddy/futures/first_completed.h"    // IWYU pragma: export
#include "eddy/futures/multi.h"              // IWYU pragma: export
#include "eddy/futures/wait_iterator.h"      // IWYU pragma: export

// Executors: ThreadPoolExecutor, run_on_executor, cancellation, offload.
#include "eddy/executor/cancellation.h"          // IWYU pragma: export
#include "eddy/executor/executor.h"              // IWYU pragma: export
#include "eddy/executor/offload.h"               // IWYU pragma: export
#include "eddy/executor/run_on_executor.h"       // IWYU pragma: export
#include "eddy/executor/thread_pool_executor.h"  // IWYU pragma: export

// The loop: IOLoop, timers and clocks, sleep, with_timeout.
#include "eddy/loop/io_loop.h"           // IWYU pragma: export
#include "eddy/loop/manual_clock.h"      // IWYU pragma: export
#include "eddy/loop/periodic_callback.h"  // IWYU pragma: export
#include "eddy/loop/sleep.h"             // IWYU pragma: export
#include "eddy/loop/time.h"              // IWYU pragma: export
#include "eddy/loop/with_timeout.h"      // IWYU pragma: export

// Coordination on the loop: Event, Condition, Semaphore, Lock, Queue,
// fan_out.
#include "eddy/sync/condition.h"  // IWYU pragma: export
#include "eddy/sync/event.h"      // IWYU pragma: export
#include "eddy/sync/fan_out.h"    // IWYU pragma: export
#include "eddy/sync/lock.h"       // IWYU pragma: export
#include "eddy/sync/queue.h"      // IWYU pragma: export
#include "eddy/sync/semaphore.h"  // IWYU pragma: export

#endif  // EDDY_EDDY_H_

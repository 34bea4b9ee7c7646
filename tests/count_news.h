// A replaced global operator new that counts each thread's calls, for
// tests of how many heap allocations an operation makes (a count, not a
// timing: the machines are shared). Link the :count_news library
// statically (linkstatic = True): the replacement must be the executable's.
#ifndef EDDY_TESTS_COUNT_NEWS_H_
#define EDDY_TESTS_COUNT_NEWS_H_

#include <cstdint>

namespace eddy::testing {

// operator new calls made by this thread so far.
int64_t thread_news();

}  // namespace eddy::testing

#endif  // EDDY_TESTS_COUNT_NEWS_H_

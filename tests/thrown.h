// thrown_what<E>(fn): the what() of the E that fn() throws, so that a test
// can check an error's message as well as its type:
//
//   EXPECT_EQ(thrown_what<std::invalid_argument>([&] { f.then(empty); }),
//             "Future::then: fn is empty");
//
// Returns "(nothing thrown)" if fn() returns; an exception of another type
// propagates, which fails the test with its message.
#ifndef EDDY_TESTS_THROWN_H_
#define EDDY_TESTS_THROWN_H_

#include <string>
#include <utility>

namespace eddy::testing {

template <class E, class F>
std::string thrown_what(F&& fn) {
  try {
    std::forward<F>(fn)();
  } catch (const E& e) {
    return e.what();
  }
  return "(nothing thrown)";
}

}  // namespace eddy::testing

#endif  // EDDY_TESTS_THROWN_H_

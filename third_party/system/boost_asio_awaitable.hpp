// Shadows <boost/asio/awaitable.hpp> in @boost (see boost.BUILD).
//
// Boost 1.74's awaitable.hpp (Debian 12) calls std::exchange without
// including <utility>; with GCC 12 in C++20 mode, where Asio enables its
// coroutine support, nothing else pulls it in and <boost/asio.hpp> fails to
// compile. Fixed upstream in later Boost releases.
#include <utility>
#include_next <boost/asio/awaitable.hpp>

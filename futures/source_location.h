// SourceLocation: where a future, callback or timer was created, for log
// lines ("exception was never retrieved ... created at file:line").
//
// Where the compiler supports std::source_location (g++) it is one pointer
// inside; clang 14 cannot compile libstdc++ 12's <source_location> (it
// lacks __builtin_source_location), so there it is three fields filled by
// builtins that exist in both compilers. Either way it costs nothing at run
// time and, used as a default argument, records the caller's location:
//
//   void add_callback(Fn fn, eddy::SourceLocation where = eddy::SourceLocation::current());
//
// Threading: a plain value (pointers to static data).
#ifndef EDDY_FUTURES_SOURCE_LOCATION_H_
#define EDDY_FUTURES_SOURCE_LOCATION_H_

#if __cplusplus < 202002L
#error "eddy needs C++20: with Bazel, add build --cxxopt=-std=c++20 --host_cxxopt=-std=c++20 to your .bazelrc"
#endif

#include <cstdint>
#if __has_include(<source_location>)
#include <source_location>
#endif

namespace eddy {

#if defined(__cpp_lib_source_location)

// One pointer (to the compiler's static record of the call site), where
// std::source_location exists (g++): every future, callback and timer
// carries one.
class SourceLocation {
 public:
  // An empty location: line() == 0.
  constexpr SourceLocation() = default;

  static constexpr SourceLocation current(
      std::source_location loc = std::source_location::current()) noexcept {
    return SourceLocation(loc);
  }

  // From std::source_location.
  constexpr SourceLocation(const std::source_location& loc) noexcept  // NOLINT(runtime/explicit)
      : loc_(loc) {}

  constexpr const char* file_name() const noexcept { return loc_.file_name(); }
  constexpr const char* function_name() const noexcept { return loc_.function_name(); }
  constexpr uint_least32_t line() const noexcept { return loc_.line(); }

 private:
  std::source_location loc_;
};

#else

class SourceLocation {
 public:
  // An empty location: line() == 0.
  constexpr SourceLocation() = default;

  static constexpr SourceLocation current(const char* file = __builtin_FILE(),
                                          const char* function = __builtin_FUNCTION(),
                                          uint_least32_t line = __builtin_LINE()) noexcept {
    SourceLocation loc;
    loc.file_ = file;
    loc.function_ = function;
    loc.line_ = line;
    return loc;
  }

  constexpr const char* file_name() const noexcept { return file_; }
  constexpr const char* function_name() const noexcept { return function_; }
  constexpr uint_least32_t line() const noexcept { return line_; }

 private:
  const char* file_ = "";
  const char* function_ = "";
  uint_least32_t line_ = 0;
};

#endif

}  // namespace eddy

#endif  // EDDY_FUTURES_SOURCE_LOCATION_H_

// SourceLocation: where a future, callback or timer was created, for log
// lines ("exception was never retrieved ... created at file:line").
//
// std::source_location would do, but clang 14 cannot compile libstdc++ 12's
// <source_location> (it lacks __builtin_source_location). The builtins
// below exist in both compilers, cost nothing at run time, and, used as a
// default argument, record the caller's location:
//
//   void add_callback(Fn fn, eddy::SourceLocation where = eddy::SourceLocation::current());
//
// Threading: a plain value (pointers to static strings).
#ifndef EDDY_FUTURES_SOURCE_LOCATION_H_
#define EDDY_FUTURES_SOURCE_LOCATION_H_

#include <cstdint>
#if __has_include(<source_location>)
#include <source_location>
#endif

namespace eddy {

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

#if defined(__cpp_lib_source_location)
  // Where std::source_location exists (g++), it converts.
  constexpr SourceLocation(const std::source_location& loc) noexcept  // NOLINT(runtime/explicit)
      : file_(loc.file_name()), function_(loc.function_name()), line_(loc.line()) {}
#endif

  constexpr const char* file_name() const noexcept { return file_; }
  constexpr const char* function_name() const noexcept { return function_; }
  constexpr uint_least32_t line() const noexcept { return line_; }

 private:
  const char* file_ = "";
  const char* function_ = "";
  uint_least32_t line_ = 0;
};

}  // namespace eddy

#endif  // EDDY_FUTURES_SOURCE_LOCATION_H_

// main() of every benchmark binary: eddy's flags first (harness.h), then
// Google Benchmark's. Run any binary with --help for Google Benchmark's
// flags; eddy adds --eddy_scale=X (shrink every workload, e.g. 0.1 for a
// quick look), --eddy_timer_span_ms=N (W6's spread) and --eddy_workers=N.
#include "benchmark/benchmark.h"
#include "eddy/bench/harness.h"

int main(int argc, char** argv) {
  eddy::bench::parse_flags(&argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

#!/bin/sh
# Stands in for Bazel's downloadable coverage tools (see BUILD.stub).
echo "eddy: 'bazel coverage' is unavailable offline (no remote_coverage_tools)" >&2
exit 1

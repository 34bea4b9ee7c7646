"""Offline dependencies of eddy.

eddy builds without any network: the C++ dependencies come from Debian
packages and are exposed under the labels their upstream Bazel repositories
use (@com_google_absl, @com_google_googletest, @com_github_google_benchmark,
@boost, @libuv). A consumer that prefers the upstream sources declares those
repositories itself before calling eddy_deps(); eddy_deps() never overrides a
repository that already exists.

Usage from another workspace:

    local_repository(name = "eddy", path = "...")
    load("@eddy//bazel:deps.bzl", "eddy_deps")
    eddy_deps()
"""

load("@bazel_tools//tools/build_defs/repo:utils.bzl", "maybe")

# Debian's multiarch directory comes first; the others cover non-Debian
# layouts so the failure message stays "package missing", not "bad path".
_LIB_DIRS = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
]

_INCLUDE_DIR = "/usr/include"

def _missing(ctx, what):
    fail(("\n\neddy: @{repo} needs {what}, which is missing.\n" +
          "Install the Debian package '{pkg}' (tools/setup-deps does it):\n" +
          "    sudo apt-get install {pkg}\n").format(
        repo = ctx.name,
        what = what,
        pkg = ctx.attr.debian_package,
    ))

def _find_lib(ctx, file_name):
    for d in _LIB_DIRS:
        p = ctx.path(d + "/" + file_name)
        if p.exists:
            return p
    return None

def _system_library_impl(ctx):
    # Headers are symlinked under include/ rather than at the repository
    # root so that package directories such as absl/base/ can hold generated
    # BUILD files without writing into /usr/include.
    for h in ctx.attr.headers:
        src = ctx.path(_INCLUDE_DIR + "/" + h)
        if not src.exists:
            _missing(ctx, str(src))
        ctx.symlink(src, "include/" + h)

    # Static archives become declared inputs, so an upgrade of the Debian
    # package relinks; shared libraries are linked with -l and found by the
    # dynamic loader in the system directories at run time.
    for name in ctx.attr.static_libs:
        lib = _find_lib(ctx, "lib%s.a" % name)
        if not lib:
            _missing(ctx, "lib%s.a" % name)
        ctx.symlink(lib, "lib/lib%s.a" % name)

    shared = []
    for name in ctx.attr.shared_libs:
        if not _find_lib(ctx, "lib%s.so" % name):
            _missing(ctx, "lib%s.so" % name)
        shared.append(name)

    # Abseil ships ~60 small libraries whose split changes between releases;
    # linking whichever the installed release has keeps the list out of here.
    prefix = ctx.attr.shared_lib_prefix
    if prefix:
        found = []
        for d in _LIB_DIRS:
            if not found and ctx.path(d).exists:
                found = [
                    f.basename[len("lib"):-len(".so")]
                    for f in ctx.path(d).readdir()
                    if f.basename.startswith("lib" + prefix) and f.basename.endswith(".so")
                ]
        if not found:
            _missing(ctx, "lib%s*.so" % prefix)
        shared += found

    # No -Wl,--as-needed here: in Bazel's dynamic test linking the users of
    # Abseil are intermediate .so files, and as-needed drops libraries that
    # only they reference (undefined symbols at run time).
    linkopts = ["-l" + n for n in sorted(shared)]

    for label, dest in ctx.attr.extra_files.items():
        ctx.symlink(label, dest)

    ctx.template("BUILD.bazel", ctx.attr.build_file, {
        "%{SHARED_LINKOPTS}": repr(linkopts),
    }, executable = False)

    # Upstream-compatible package labels (e.g. //absl/base:core_headers),
    # each an alias of one target of the root package.
    for pkg, names in ctx.attr.alias_packages.items():
        lines = ['package(default_visibility = ["//visibility:public"])', ""]
        for n in names:
            lines.append('alias(name = "%s", actual = "//:%s")' % (n, ctx.attr.alias_target))
        ctx.file(pkg + "/BUILD.bazel", "\n".join(lines) + "\n", executable = False)

    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name, executable = False)

system_library = repository_rule(
    implementation = _system_library_impl,
    # Re-run by every bazel command: it only makes symlinks, and so a package
    # installed or upgraded since the last build is picked up at once.
    local = True,
    attrs = {
        "debian_package": attr.string(mandatory = True),
        "build_file": attr.label(mandatory = True, allow_single_file = True),
        "headers": attr.string_list(doc = "Files or directories under /usr/include."),
        "static_libs": attr.string_list(doc = "'gtest' means libgtest.a."),
        "shared_libs": attr.string_list(doc = "'uv' means libuv.so, linked with -luv."),
        "shared_lib_prefix": attr.string(doc = "Link every lib<prefix>*.so."),
        "extra_files": attr.label_keyed_string_dict(
            allow_files = True,
            doc = "Local files (e.g. header fixes) to place in the repository.",
        ),
        "alias_packages": attr.string_list_dict(),
        "alias_target": attr.string(),
    },
)

def _stub_repository_impl(ctx):
    for label, dest in ctx.attr.files.items():
        ctx.symlink(label, dest)
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name, executable = False)

# Symlinks a few local files into a repository; used for the stand-ins of the
# rule sets that Bazel 4 itself would otherwise download (third_party/).
stub_repository = repository_rule(
    implementation = _stub_repository_impl,
    attrs = {"files": attr.label_keyed_string_dict(allow_files = True)},
)

# Upstream Abseil labels that eddy (or its users) may depend on. They all
# resolve to the one system library: the Debian build is a set of shared
# libraries, so finer granularity would buy nothing.
_ABSL_PACKAGES = {
    "absl/algorithm": ["algorithm", "container"],
    "absl/base": ["base", "config", "core_headers", "dynamic_annotations", "endian", "log_severity"],
    "absl/cleanup": ["cleanup"],
    "absl/container": ["btree", "fixed_array", "flat_hash_map", "flat_hash_set", "inlined_vector", "node_hash_map", "node_hash_set"],
    "absl/debugging": ["failure_signal_handler", "leak_check", "stacktrace", "symbolize"],
    "absl/flags": ["flag", "marshalling", "parse", "reflection", "usage"],
    "absl/functional": ["any_invocable", "bind_front", "function_ref"],
    "absl/hash": ["hash"],
    "absl/memory": ["memory"],
    "absl/meta": ["type_traits"],
    "absl/numeric": ["bits", "int128"],
    "absl/random": ["bit_gen_ref", "distributions", "random"],
    "absl/status": ["status", "statusor"],
    "absl/strings": ["cord", "str_format", "strings"],
    "absl/synchronization": ["synchronization"],
    "absl/time": ["time"],
    "absl/types": ["any", "compare", "optional", "span", "variant"],
    "absl/utility": ["utility"],
}

def eddy_deps():
    """Declares every external repository eddy needs, all offline."""

    # Bazel 4 appends its own WORKSPACE suffix that downloads these; a local
    # definition made first wins (the suffix uses maybe()), which is what
    # keeps C++ builds and tests from touching the network.
    maybe(
        stub_repository,
        name = "rules_cc",
        files = {
            Label("//third_party:rules_cc/cc/BUILD.stub"): "cc/BUILD.bazel",
            Label("//third_party:rules_cc/cc/defs.bzl"): "cc/defs.bzl",
        },
    )
    maybe(
        stub_repository,
        name = "rules_java",
        files = {
            Label("//third_party:rules_java/java/BUILD.stub"): "java/BUILD.bazel",
            Label("//third_party:rules_java/java/defs.bzl"): "java/defs.bzl",
        },
    )

    # Not wrapped in maybe() by Bazel; declared here first, ours is used.
    maybe(
        stub_repository,
        name = "remote_coverage_tools",
        files = {
            Label("//third_party:remote_coverage_tools/BUILD.stub"): "BUILD.bazel",
            Label("//third_party:remote_coverage_tools/unsupported.sh"): "unsupported.sh",
        },
    )

    maybe(
        system_library,
        name = "com_google_absl",
        debian_package = "libabsl-dev",
        build_file = Label("//third_party:system/absl.BUILD"),
        headers = ["absl"],
        shared_lib_prefix = "absl_",
        alias_packages = _ABSL_PACKAGES,
        alias_target = "absl",
    )
    maybe(
        system_library,
        name = "com_google_googletest",
        debian_package = "libgmock-dev",  # depends on libgtest-dev
        build_file = Label("//third_party:system/googletest.BUILD"),
        headers = ["gtest", "gmock"],
        static_libs = ["gtest", "gtest_main", "gmock", "gmock_main"],
    )
    maybe(
        system_library,
        name = "com_github_google_benchmark",
        debian_package = "libbenchmark-dev",
        build_file = Label("//third_party:system/benchmark.BUILD"),
        headers = ["benchmark"],
        static_libs = ["benchmark_main"],
        shared_libs = ["benchmark"],
    )
    maybe(
        system_library,
        name = "boost",
        debian_package = "libboost-dev",
        build_file = Label("//third_party:system/boost.BUILD"),
        headers = ["boost/asio.hpp"],
        extra_files = {
            Label("//third_party:system/boost_asio_awaitable.hpp"): "include/boost/asio/awaitable.hpp",
        },
    )
    maybe(
        system_library,
        name = "libuv",
        debian_package = "libuv1-dev",
        build_file = Label("//third_party:system/libuv.BUILD"),
        headers = ["uv.h", "uv"],
        shared_libs = ["uv"],
    )

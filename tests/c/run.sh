#!/usr/bin/env bash
# Builds libevqueue (release) and runs the C and C++ tests against it:
#   - the header alone compiles as C99 and as C++11 (-Wall -Wextra -Werror -pedantic);
#   - tests/c/test_evqueue.c (C11) linked dynamically and statically, and
#     tests/c/test_evqueue.cpp (C++17) linked dynamically, all with
#     -Wall -Wextra -Werror -fsanitize=address,undefined;
#   - tests/c/shared_producer.c (the C producer process of
#     python/tests/test_shared.py) builds the same way and pushes 1000 events;
#   - examples/c builds through pkg-config and through CMake from an installed
#     prefix (ffi/install.sh) and runs; benches/c compiles (not run).
# Needs gcc, g++, pkg-config, cmake and libck-dev (scripts/test.sh installs them).
# About 1 minute on 2 cores once the Rust dependencies are built.
#
# Sanitizers and a Rust library: the test executables are instrumented, so
# the ASan runtime is linked into them and comes first; no LD_PRELOAD is
# needed (that is only for an uninstrumented host, e.g. Python, loading an
# instrumented library). libevqueue itself is not instrumented: ASan checks
# the C side of every call and intercepts the library's malloc/free, so a
# leak or a double free of anything crossing the boundary is still caught.
# Leak detection stays on: the tests free every queue and subscriber, and
# Rust's runtime frees what the library allocates (joined workers, dropped
# handlers). UBSan aborts on the first report.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
out=target/c-tests
mkdir -p "$out"

cargo build --release -p evqueue-ffi --quiet
lib=$root/target/release
# Programs linked against the library load it by its SONAME: in the build
# tree that is a link to cargo's file (ffi/install.sh installs the real set).
ln -sf libevqueue.so "$lib/libevqueue.so.0"

warn=(-Wall -Wextra -Werror -pedantic)
san=(-g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
# What the static library needs besides itself (`cargo rustc -- --print native-static-libs`).
static_libs=(-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo "--- the shared library: SONAME, and only evq_* symbols exported"
readelf -d "$lib/libevqueue.so" | grep -q 'SONAME.*\[libevqueue\.so\.0\]' ||
  { echo "libevqueue.so has no SONAME libevqueue.so.0" >&2; exit 1; }
exported=$(nm -D --defined-only "$lib/libevqueue.so" | awk '{print $3}')
others=$(grep -v '^evq_' <<<"$exported" || true)
[ -z "$others" ] || { printf 'symbols exported besides evq_*:\n%s\n' "$others" >&2; exit 1; }
[ "$(grep -c '^evq_' <<<"$exported")" -ge 30 ] || { echo "evq_* symbols missing from libevqueue.so" >&2; exit 1; }

echo "--- header compiles as C99 and C++11"
gcc -std=c99 "${warn[@]}" -fsyntax-only -x c include/evqueue.h
g++ -std=c++11 "${warn[@]}" -fsyntax-only -x c++ include/evqueue.h

echo "--- C11, dynamic"
gcc -std=c11 "${warn[@]}" "${san[@]}" -Iinclude tests/c/test_evqueue.c -o "$out/test_c_dynamic" \
  -L"$lib" -levqueue -Wl,-rpath,"$lib" -lpthread
ldd "$out/test_c_dynamic" >"$out/ldd.txt"
grep -q "libevqueue.so" "$out/ldd.txt" || { echo "test_c_dynamic does not load libevqueue.so" >&2; exit 1; }
"$out/test_c_dynamic"

echo "--- C11, static"
gcc -std=c11 "${warn[@]}" "${san[@]}" -Iinclude tests/c/test_evqueue.c -o "$out/test_c_static" \
  "$lib/libevqueue.a" "${static_libs[@]}"
ldd "$out/test_c_static" >"$out/ldd.txt"
if grep -q "libevqueue" "$out/ldd.txt"; then echo "test_c_static loads libevqueue dynamically" >&2; exit 1; fi
"$out/test_c_static"

echo "--- tests/c/shared_producer.c (python/tests/test_shared.py runs it) compiles and runs"
gcc -std=c11 "${warn[@]}" "${san[@]}" -Iinclude tests/c/shared_producer.c -o "$out/shared_producer" \
  -L"$lib" -levqueue -Wl,-rpath,"$lib"
ring=$root/$out/shared-producer-ring
rm -f "$ring"
[ "$("$out/shared_producer" --create "$ring" 1000)" = "pushed 1000 rejected 0" ] ||
  { echo "shared_producer did not push 1000 events" >&2; exit 1; }
[ ! -e "$ring" ] || { echo "shared_producer left $ring behind" >&2; exit 1; }

echo "--- C++17, dynamic"
g++ -std=c++17 "${warn[@]}" "${san[@]}" -Iinclude tests/c/test_evqueue.cpp -o "$out/test_cpp_dynamic" \
  -L"$lib" -levqueue -Wl,-rpath,"$lib" -lpthread
"$out/test_cpp_dynamic"

echo "--- packaging: install, then the example via pkg-config and via CMake"
prefix=$root/$out/prefix
rm -rf "$prefix"
bash ffi/install.sh "$prefix" >/dev/null
for f in libevqueue.so libevqueue.so.0; do
  [ -L "$prefix/lib/$f" ] || { echo "install: $f is not a symlink" >&2; exit 1; }
done
[ "$(readlink -f "$prefix/lib/libevqueue.so")" = "$(readlink -f "$prefix"/lib/libevqueue.so.0.*)" ] ||
  { echo "install: libevqueue.so does not lead to the versioned file" >&2; exit 1; }
PKG_CONFIG_PATH=$prefix/lib/pkgconfig make -s -C examples/c clean all OUT="$root/$out/example-pc"
"$out/example-pc"
readelf -d "$out/example-pc" | grep -q 'NEEDED.*\[libevqueue\.so\.0\]' ||
  { echo "the example does not record libevqueue.so.0 as needed" >&2; exit 1; }
cmake -S examples/c -B "$out/example-cmake" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$out/example-cmake" >/dev/null
"$out/example-cmake/evqueue_example" >/dev/null
"$out/example-cmake/evqueue_example_static" >/dev/null

echo "--- benches/c compiles"
bash benches/c/run.sh --build-only

echo "C and C++ tests: ok"

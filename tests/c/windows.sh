#!/usr/bin/env bash
# Cross-builds the C library for Windows (x86_64-pc-windows-gnu, Debian's
# mingw-w64) and tests it:
#   - evqueue.dll and its import library libevqueue.dll.a build (release),
#     and the DLL exports only evq_* functions;
#   - the header compiles as C99 and C++11 with mingw-w64;
#   - tests/c/test_evqueue.c (C11) links against the DLL through its import
#     library and statically against libevqueue.a; tests/c/test_evqueue.cpp
#     (C++17, the posix-threads g++ for std::thread) and examples/c/example.c
#     link against the DLL; all with -Wall -Wextra -Werror. The programs link
#     the mingw runtime statically (-static), so each needs only evqueue.dll
#     and Windows' own DLLs;
#   - under Wine, when it is installed (Debian 12: `wine64`, Wine 8.0), all
#     four programs run; without Wine the script says so and stops after the
#     build and link checks.
# Needs the rustup target x86_64-pc-windows-gnu and the Debian packages
# gcc-mingw-w64-x86-64 and g++-mingw-w64-x86-64 (+ wine64 to run);
# scripts/test.sh installs them. About 20 s on 2 cores once the library is
# built, a fresh Wine prefix included; the release cross-build adds about 30 s.
#
# Wine 8.0 lacks bcryptprimitives.dll, whose ProcessPrng Rust's std imports
# on Windows 10+ targets (Windows 10 and 11 ship it; Wine 9 has it): under a
# Wine without it, the script builds tests/c/windows/bcryptprimitives.c, a
# stand-in that forwards to RtlGenRandom, next to the test programs. It is a
# test device only: evqueue.dll itself is unchanged.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
target=x86_64-pc-windows-gnu
cc=x86_64-w64-mingw32-gcc
cxx=x86_64-w64-mingw32-g++-posix # the win32-threads g++ has no std::thread
lib=${CARGO_TARGET_DIR:-$root/target}/$target/release
out=$root/target/c-tests-windows
mkdir -p "$out"

export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=$cc
cargo build --release -p evqueue-ffi --target "$target" --quiet
for f in evqueue.dll libevqueue.dll.a libevqueue.a; do
  [ -f "$lib/$f" ] || { echo "$lib/$f was not built" >&2; exit 1; }
done

echo "--- evqueue.dll exports only evq_* functions"
exported=$(x86_64-w64-mingw32-objdump -p "$lib/evqueue.dll" |
  sed -n '/\[Ordinal\/Name Pointer\] Table/,/^$/p' | awk '/\[ *[0-9]+\]/ {print $3}')
others=$(grep -v '^evq_' <<<"$exported" || true)
[ -z "$others" ] || { printf 'symbols exported besides evq_*:\n%s\n' "$others" >&2; exit 1; }
[ "$(grep -c '^evq_' <<<"$exported")" -ge 30 ] || { echo "evq_* symbols missing from evqueue.dll" >&2; exit 1; }

warn=(-Wall -Wextra -Werror -pedantic)
# What libevqueue.a needs besides itself
# (`cargo rustc ... --crate-type staticlib -- --print native-static-libs`).
static_libs=(-lkernel32 -lntdll -luserenv -lws2_32 -ldbghelp)

echo "--- header compiles as C99 and C++11 (mingw-w64)"
"$cc" -std=c99 "${warn[@]}" -fsyntax-only -x c include/evqueue.h
"$cxx" -std=c++11 "${warn[@]}" -fsyntax-only -x c++ include/evqueue.h

echo "--- link: C11 and C++17 tests and the example against evqueue.dll, C11 against libevqueue.a"
"$cc" -std=c11 "${warn[@]}" -O1 -Iinclude tests/c/test_evqueue.c -o "$out/test_c_dynamic.exe" \
  -static "$lib/libevqueue.dll.a" -lpthread
"$cc" -std=c11 "${warn[@]}" -O1 -Iinclude tests/c/test_evqueue.c -o "$out/test_c_static.exe" \
  -static "$lib/libevqueue.a" "${static_libs[@]}" -lpthread
"$cxx" -std=c++17 "${warn[@]}" -O1 -Iinclude tests/c/test_evqueue.cpp -o "$out/test_cpp_dynamic.exe" \
  -static "$lib/libevqueue.dll.a"
"$cc" -std=c11 "${warn[@]}" -O2 -Iinclude examples/c/example.c -o "$out/example.exe" \
  -static "$lib/libevqueue.dll.a"
imports() { x86_64-w64-mingw32-objdump -p "$1" | awk '/DLL Name:/ {print $3}'; }
for exe in test_c_dynamic test_cpp_dynamic example; do
  imports "$out/$exe.exe" | grep -qx evqueue.dll || { echo "$exe.exe does not import evqueue.dll" >&2; exit 1; }
done
if imports "$out/test_c_static.exe" | grep -qix evqueue.dll; then
  echo "test_c_static.exe imports evqueue.dll" >&2
  exit 1
fi
cp "$lib/evqueue.dll" "$out/"

# Debian's wine64 package puts the 64-bit loader in /usr/lib/wine; its `wine`
# wrapper wants the 32-bit one too.
wine=$(command -v wine64 || true)
[ -n "$wine" ] || { [ -x /usr/lib/wine/wine64 ] && wine=/usr/lib/wine/wine64; } || true
if [ -z "$wine" ]; then
  echo "--- Wine is not installed: built and linked, not run (apt-get install wine64)"
  echo "Windows cross-build: ok (not run)"
  exit 0
fi

echo "--- run under $("$wine" --version) ($wine)"
export WINEPREFIX=$root/target/wineprefix WINEARCH=win64 WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
if ! ls /usr/lib/*/wine/x86_64-windows/bcryptprimitives.dll /usr/lib/wine/x86_64-windows/bcryptprimitives.dll \
  >/dev/null 2>&1; then
  echo "(this Wine has no bcryptprimitives.dll: using the stand-in from tests/c/windows/)"
  "$cc" -std=c11 "${warn[@]}" -O2 -shared tests/c/windows/bcryptprimitives.c \
    -o "$out/bcryptprimitives.dll" -ladvapi32
fi
# A fresh prefix: created on the first run (headless: no display is needed).
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  (cd "$out" && timeout 120 "$wine" example.exe >/dev/null 2>&1) || true
fi
(
  cd "$out"
  for exe in test_c_dynamic test_c_static test_cpp_dynamic example; do
    echo "$exe.exe:"
    timeout 300 "$wine" "$exe.exe"
  done
)
echo "Windows cross-build: ok (run under Wine)"

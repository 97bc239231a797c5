#!/usr/bin/env bash
# Installs the C ABI into PREFIX (default /usr/local):
#   PREFIX/include/evqueue.h
#   PREFIX/lib/libevqueue.so.MAJOR.MINOR.PATCH (SONAME libevqueue.so.MAJOR),
#   with the symlinks libevqueue.so.MAJOR and libevqueue.so; PREFIX/lib/libevqueue.a
#   PREFIX/lib/pkgconfig/evqueue.pc                       (pkg-config)
#   PREFIX/lib/cmake/evqueue/evqueueConfig{,Version}.cmake (find_package)
# Builds the release library first. Usage: bash ffi/install.sh [PREFIX]
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-/usr/local}
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
version=$(sed -n 's/^#define EVQ_VERSION_STRING "\(.*\)"$/\1/p' include/evqueue.h)
major=${version%%.*}
minor=${version#*.}
minor=${minor%%.*}
cargo build --release -p evqueue-ffi --quiet
install -d "$prefix/include" "$prefix/lib/pkgconfig" "$prefix/lib/cmake/evqueue"
install -m 644 include/evqueue.h "$prefix/include/"
install -m 755 target/release/libevqueue.so "$prefix/lib/libevqueue.so.$version"
ln -sf "libevqueue.so.$version" "$prefix/lib/libevqueue.so.$major"
ln -sf "libevqueue.so.$major" "$prefix/lib/libevqueue.so"
install -m 644 target/release/libevqueue.a "$prefix/lib/"
subst() {
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" \
    -e "s|@MAJOR@|$major|g" -e "s|@MINOR@|$minor|g" "$1" >"$2"
}
subst ffi/evqueue.pc.in "$prefix/lib/pkgconfig/evqueue.pc"
subst ffi/cmake/evqueueConfig.cmake.in "$prefix/lib/cmake/evqueue/evqueueConfig.cmake"
subst ffi/cmake/evqueueConfigVersion.cmake.in "$prefix/lib/cmake/evqueue/evqueueConfigVersion.cmake"
echo "installed evqueue $version into $prefix"

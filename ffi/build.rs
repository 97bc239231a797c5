//! Gives the shared library the SONAME `libevqueue.so.<major>` on Linux, so
//! programs linked against it record that name and keep loading it across
//! compatible updates (ffi/install.sh installs the usual symlinks).
//!
//! Which symbols are exported needs nothing here: rustc links a cdylib with
//! a version script of its own that exports only the `#[no_mangle]`
//! functions (every one of them `evq_*`); tests/c/run.sh checks that with
//! `nm -D`.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    if os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libevqueue.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}

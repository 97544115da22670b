//! Generates the public C header `include/kernelpool.h` from `src/ffi` with cbindgen.
//! The header is committed; CI fails when a build changes it.

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let config =
        cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("cbindgen.toml");
    match cbindgen::Builder::new()
        .with_config(config)
        .with_src(format!("{dir}/src/ffi/mod.rs"))
        .generate()
    {
        Ok(bindings) => {
            bindings.write_to_file(format!("{dir}/include/kernelpool.h"));
        }
        Err(e) => println!("cargo:warning=cbindgen could not generate include/kernelpool.h: {e}"),
    }
}

//! Generates the tonic peer's client and server from `proto/echo.proto`
//! with the protoc that `protoc-bin-vendored` ships (none is installed on
//! the machines this runs on).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    // `bytes` fields as `bytes::Bytes`: a request's payload is shared, not copied, per call.
    tonic_prost_build::configure()
        .bytes(".")
        .compile_protos(&["proto/echo.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/echo.proto");
    Ok(())
}

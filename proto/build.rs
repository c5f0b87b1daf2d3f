fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/regatta.proto");
    tonic_prost_build::configure().compile_protos(&["proto/regatta.proto"], &["proto"])?;
    Ok(())
}

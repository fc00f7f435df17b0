fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let protos = [
        root.join("crow/v1/ingest.proto"),
        root.join("crow/v1/interactions.proto"),
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let descriptors =
        std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("crow_descriptor.bin");
    tonic_prost_build::configure()
        // For server reflection.
        .file_descriptor_set_path(descriptors)
        // Malformed messages are INVALID_ARGUMENT with a fixed message, not prost's INTERNAL.
        .codec_path("crate::codec::ProtoCodec")
        .compile_protos(&protos, &[root])?;
    Ok(())
}

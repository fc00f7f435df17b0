fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let protos = [
        root.join("crow/v1/ingest.proto"),
        root.join("crow/v1/interactions.proto"),
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    tonic_prost_build::configure().compile_protos(&protos, &[root])?;
    Ok(())
}

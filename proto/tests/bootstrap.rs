//! Keeps the committed generated code in `src/gen` identical to what the `.proto` files produce,
//! so building needs no `protoc`. Run with `NETWARDEN_BLESS=1` to rewrite the committed files.

use std::path::{Path, PathBuf};

#[test]
fn generated_code_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let protos = [
        root.join("proto/netwarden/v1/ingest.proto"),
        root.join("proto/netwarden/v1/telemetry.proto"),
        root.join("proto/netwarden/v1/query.proto"),
        root.join("proto/netwarden/v1/plan.proto"),
    ];
    let includes = [root.join("proto")];
    let out = tempfile::tempdir().unwrap();

    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc");
    // SAFETY-free: the build helper reads PROTOC from the environment.
    std::env::set_var("PROTOC", protoc);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        .out_dir(out.path())
        // For gRPC server reflection on the collector's query port.
        .file_descriptor_set_path(out.path().join("descriptor.bin"))
        .compile_protos(&protos, &includes)
        .expect("generate code from the .proto files");

    let gen_dir: PathBuf = root.join("src/gen");
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(out.path()).unwrap() {
        let entry = entry.unwrap();
        let fresh = std::fs::read(entry.path()).unwrap();
        let committed_path = gen_dir.join(entry.file_name());
        let committed = std::fs::read(&committed_path).unwrap_or_default();
        if fresh != committed {
            if std::env::var_os("NETWARDEN_BLESS").is_some() {
                std::fs::write(&committed_path, fresh).unwrap();
            } else {
                stale.push(committed_path.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "generated code is out of date: {stale:?}; run `NETWARDEN_BLESS=1 cargo test -p netwarden-proto --test bootstrap`"
    );
}

// Compiles the plugin protocol definitions in proto/ with a pure-Rust protobuf
// compiler, so a fresh machine needs no protoc binary.
fn main() {
    let files = ["tfplugin6.proto", "grpc_controller.proto", "grpc_stdio.proto", "grpc_broker.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed=proto/{f}");
    }
    let fds = protox::compile(files, ["proto"]).expect("proto/ definitions compile");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)
        .expect("generate Rust code from proto/");
}

// Compiles the plugin protocol definitions in proto/ with a pure-Rust protobuf
// compiler, so a fresh machine needs no protoc binary, and links the provider
// as a position-dependent executable on Linux.
fn main() {
    // Terraform starts a provider process for every command and alias, so
    // start-up counts. As a PIE, the dynamic loader applied some 90,000
    // relocations at every start and copied the pages they touch: two thirds
    // of the time to the handshake line and 330 extra page faults. Go-built
    // providers are position-dependent on linux/amd64 by default too.
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-link-arg-bin=terraform-provider-cxflow=-no-pie");
    }

    let files = ["tfplugin6.proto", "grpc_controller.proto", "grpc_stdio.proto", "grpc_broker.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed=proto/{f}");
    }
    let fds = protox::compile(files, ["proto"]).expect("proto/ definitions compile");
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds).expect("generate Rust code from proto/");
}

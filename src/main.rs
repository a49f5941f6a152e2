use cxflow::plugin::{logging, serve};
use cxflow::provider::CxflowProvider;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--version") {
        println!("terraform-provider-cxflow {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    logging::init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let code = rt.block_on(serve::serve(CxflowProvider));
    std::process::exit(code);
}

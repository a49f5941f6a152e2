use cxflow::plugin::{logging, serve};
use cxflow::provider::CxflowProvider;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--version") {
        say(&format!("terraform-provider-cxflow {}\n", env!("CARGO_PKG_VERSION")));
        return;
    }
    if args.first().map(String::as_str) == Some("docs") {
        // `docs [<repo_root>]`: regenerate the registry docs (make docs).
        let root = match &args[1..] {
            [] => std::path::PathBuf::from("."),
            [root] => std::path::PathBuf::from(root),
            _ => {
                eprintln!("usage: terraform-provider-cxflow docs [<repo_root>]");
                std::process::exit(2);
            }
        };
        match cxflow::docs::generate(&root) {
            Ok(summary) => say(&summary.to_string()),
            Err(e) => {
                eprintln!("docs: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    logging::init();
    let listening = match serve::handshake() {
        Ok(l) => l,
        Err(code) => std::process::exit(code),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let code = rt.block_on(serve::serve(CxflowProvider, listening));
    std::process::exit(code);
}

/// Writes to stdout, ignoring a reader that went away (`docs . | head`):
/// `print!` would panic on the broken pipe.
fn say(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

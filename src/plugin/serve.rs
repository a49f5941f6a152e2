//! go-plugin serving: magic cookie, unix socket, AutoMTLS, the handshake line,
//! and the controller, stdio, broker and health services beside the provider.

use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status, Streaming};

use super::goplugin;
use super::server::ProviderService;
use super::tfplugin6::provider_server::ProviderServer;
use super::tls;
use crate::framework::provider::Provider;

pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
const CORE_PROTOCOL: u32 = 1;
const APP_PROTOCOL: u32 = 6;
/// Terraform sends whole states; go-plugin lifts gRPC's 4 MiB default too.
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// What start-up prepared before the async runtime exists: the listening
/// socket, its path and the AutoMTLS configuration whose certificate went out
/// in the handshake line.
pub struct Listening {
    listener: std::os::unix::net::UnixListener,
    sock: PathBuf,
    tls: Option<tls::PluginTls>,
}

/// Everything go-plugin needs before it can talk to us, done synchronously:
/// check the magic cookie and protocol version, bind the unix socket, set up
/// AutoMTLS and write the handshake line to stdout. Terraform waits for that
/// line before anything else, so it goes out before the async runtime and its
/// worker threads are started; a connection that arrives meanwhile waits in
/// the socket's backlog. On failure, the message is on stderr and the error is
/// the exit code.
pub fn handshake() -> Result<Listening, i32> {
    // Terraform handles interrupts itself and then calls StopProvider; like
    // any go-plugin server we must not die of the SIGINT it also delivers to
    // our process group. Ignored from the first instruction: `serve` installs
    // a handler that logs them once the runtime is up.
    // SAFETY: setting a signal's disposition to SIG_IGN runs no handler code.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    if std::env::var(MAGIC_COOKIE_KEY).ok().as_deref() != Some(MAGIC_COOKIE_VALUE) {
        eprintln!(
            "This binary is a plugin for Terraform and is not meant to be run directly. \
             Configure it in Terraform (source = \"cxflow/cxflow\") and run terraform commands instead."
        );
        return Err(1);
    }
    if let Ok(versions) = std::env::var("PLUGIN_PROTOCOL_VERSIONS") {
        if !versions.split(',').any(|v| v.trim() == APP_PROTOCOL.to_string()) {
            eprintln!("This provider speaks plugin protocol {APP_PROTOCOL}; this Terraform offers {versions}. Use Terraform 1.0 or later.");
            return Err(1);
        }
    }

    let tls = match std::env::var("PLUGIN_CLIENT_CERT") {
        Ok(pem) if !pem.is_empty() => match tls::from_client_pem(&pem) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("AutoMTLS setup failed: {e}");
                return Err(1);
            }
        },
        _ => None,
    };

    let dir = std::env::var("PLUGIN_UNIX_SOCKET_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
    let sock = dir.join(format!("plugin-cxflow-{}-{}", std::process::id(), rand_suffix()));
    let listener = match std::os::unix::net::UnixListener::bind(&sock).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("Could not listen on {}: {e}", sock.display());
            return Err(1);
        }
    };

    let cert = tls.as_ref().map(|t| t.cert_b64.as_str()).unwrap_or_default();
    let line = format!("{CORE_PROTOCOL}|{APP_PROTOCOL}|unix|{}|grpc|{cert}\n", sock.display());
    let mut out = std::io::stdout().lock();
    if out.write_all(line.as_bytes()).and_then(|()| out.flush()).is_err() {
        // Nobody is reading: Terraform is gone.
        let _ = std::fs::remove_file(&sock);
        return Err(1);
    }
    Ok(Listening { listener, sock, tls })
}

/// Serve the provider on the socket [`handshake`] announced until Terraform
/// shuts it down. Returns the process exit code.
pub async fn serve<P: Provider>(provider: P, listening: Listening) -> i32 {
    let Listening { listener, sock, tls } = listening;
    let listener = match UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("Could not serve on {}: {e}", sock.display());
            let _ = std::fs::remove_file(&sock);
            return 1;
        }
    };

    let shutdown = CancellationToken::new();
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_service_status("plugin", tonic_health::ServingStatus::Serving).await;

    let provider_svc = ProviderServer::new(ProviderService::new(provider)).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE);
    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(goplugin::grpc_controller_server::GrpcControllerServer::new(Controller { shutdown: shutdown.clone() }))
        .add_service(goplugin::grpc_stdio_server::GrpcStdioServer::new(Stdio { shutdown: shutdown.clone() }))
        .add_service(goplugin::grpc_broker_server::GrpcBrokerServer::new(Broker { shutdown: shutdown.clone() }))
        .add_service(provider_svc);

    // Terraform handles interrupts itself and then calls StopProvider;
    // like any go-plugin server we ignore SIGINT rather than die mid-apply.
    tokio::spawn(async {
        loop {
            if tokio::signal::ctrl_c().await.is_err() {
                break;
            }
            tracing::debug!(target: "cxflow::plugin", "ignoring interrupt; Terraform will call StopProvider");
        }
    });
    {
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                term.recv().await;
                stop.cancel();
            }
        });
    }

    let stop = shutdown.clone();
    let result = match tls {
        Some(t) => {
            let incoming = tls_incoming(listener, tokio_rustls::TlsAcceptor::from(t.config), shutdown.clone());
            router.serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await }).await
        }
        None => {
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            router.serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await }).await
        }
    };
    let _ = std::fs::remove_file(&sock);
    match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(target: "cxflow::plugin", error = %e, "gRPC server failed");
            1
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

/// Accept unix connections and finish each TLS handshake on its own task, so
/// one slow client never holds up the accept loop.
fn tls_incoming(listener: UnixListener, acceptor: tokio_rustls::TlsAcceptor, stop: CancellationToken) -> ReceiverStream<Result<TlsConn, std::io::Error>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                c = listener.accept() => c,
                _ = stop.cancelled() => break,
            };
            match conn {
                Ok((stream, _)) => {
                    let acceptor = acceptor.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        match acceptor.accept(stream).await {
                            Ok(s) => {
                                let _ = tx.send(Ok(TlsConn(s))).await;
                            }
                            Err(e) => tracing::warn!(target: "cxflow::plugin", error = %e, "TLS handshake with Terraform failed"),
                        }
                    });
                }
                Err(e) => {
                    if tx.send(Err(e)).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

pub struct TlsConn(tokio_rustls::server::TlsStream<UnixStream>);

impl Connected for TlsConn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for TlsConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

struct Controller {
    shutdown: CancellationToken,
}

#[tonic::async_trait]
impl goplugin::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _r: Request<goplugin::Empty>) -> Result<Response<goplugin::Empty>, Status> {
        tracing::debug!(target: "cxflow::plugin", "controller shutdown");
        let stop = self.shutdown.clone();
        // Answer first, then stop serving.
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            stop.cancel();
        });
        Ok(Response::new(goplugin::Empty {}))
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The provider writes nothing to stdout or stderr other than log lines, which
/// go-plugin reads from the process's own stderr; the stream stays open and quiet
/// until shutdown.
struct Stdio {
    shutdown: CancellationToken,
}

#[tonic::async_trait]
impl goplugin::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream = BoxStream<goplugin::StdioData>;
    async fn stream_stdio(&self, _r: Request<()>) -> Result<Response<Self::StreamStdioStream>, Status> {
        let stop = self.shutdown.clone();
        let s = futures::stream::once(async move {
            stop.cancelled().await;
            Err(Status::unavailable("plugin shutting down"))
        });
        Ok(Response::new(Box::pin(s)))
    }
}

/// The provider opens no extra connections through the broker; it keeps the
/// stream open and reads Terraform's messages until shutdown.
struct Broker {
    shutdown: CancellationToken,
}

#[tonic::async_trait]
impl goplugin::grpc_broker_server::GrpcBroker for Broker {
    type StartStreamStream = BoxStream<goplugin::ConnInfo>;
    async fn start_stream(&self, r: Request<Streaming<goplugin::ConnInfo>>) -> Result<Response<Self::StartStreamStream>, Status> {
        let mut inbound = r.into_inner();
        let stop = self.shutdown.clone();
        tokio::spawn(async move { while let Ok(Some(_)) = inbound.message().await {} });
        let s = futures::stream::once(async move {
            stop.cancelled().await;
            Err(Status::unavailable("plugin shutting down"))
        });
        Ok(Response::new(Box::pin(s)))
    }
}

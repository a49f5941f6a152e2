//! One HTTP client for every AWS client, and a bound on the requests one
//! provider process has in flight through it.
//!
//! Terraform applies many resources at once (`-parallelism`, 10 by default)
//! and every composite runs several children at once, so without a bound a
//! large apply opens hundreds of connections in the same instant, each with
//! its own buffers kept in the client's pool afterwards. AWS would throttle
//! most of those calls anyway. The bound wraps the SDK's own HTTP client: a
//! request waits for a permit before it is sent and gives it back once its
//! response has arrived, so the pool holds about as many connections as the
//! bound (a few more where a new connection races an idle one: 34 at a
//! bound of 32 in the bench's apply of 100 services).

use std::sync::Arc;

use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use tokio::sync::Semaphore;

/// Requests in flight at most, unless `CXFLOW_MAX_CONCURRENT_CALLS` says
/// otherwise (0: no bound). At 50 ms a call that is 1,280 calls a second, more
/// than AWS's default API rates allow, and room for a large composite's
/// children to release their leases in one round.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

/// The bound from the environment, or the default; `None`: unbounded.
pub fn configured_bound() -> Option<usize> {
    let n = std::env::var("CXFLOW_MAX_CONCURRENT_CALLS").ok().and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(DEFAULT_MAX_IN_FLIGHT);
    (n > 0).then_some(n)
}

/// The HTTPS client every AWS client of the provider shares, made as the
/// SDK makes its default one (hyper 1, rustls with aws-lc, proxy settings
/// from the environment). Left to itself the SDK gives every service client
/// a client of its own: its own connection pool and its own copy of the
/// system's root certificates, for seventeen services.
pub fn shared_client() -> SharedHttpClient {
    use aws_smithy_http_client::{Builder, ConnectorBuilder, proxy::ProxyConfig, tls};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut b = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc));
        b.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            b.set_sleep_impl(c.sleep_impl());
        }
        b.set_proxy_config(Some(ProxyConfig::from_env()));
        b.build()
    })
}

/// Wrap `inner` so that at most `bound` requests through it (from every
/// client built on it) are in flight at once.
pub fn bounded(inner: SharedHttpClient, bound: usize) -> SharedHttpClient {
    SharedHttpClient::new(Bounded { inner, permits: Arc::new(Semaphore::new(bound)) })
}

#[derive(Debug)]
struct Bounded {
    inner: SharedHttpClient,
    permits: Arc<Semaphore>,
}

impl HttpClient for Bounded {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(BoundedConnector { inner: self.inner.http_connector(settings, components), permits: self.permits.clone() })
    }
    fn connector_metadata(&self) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

#[derive(Debug)]
struct BoundedConnector {
    inner: SharedHttpConnector,
    permits: Arc<Semaphore>,
}

impl HttpConnector for BoundedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (inner, permits) = (self.inner.clone(), self.permits.clone());
        HttpConnectorFuture::new(async move {
            // The semaphore is never closed, so a permit always comes.
            let _permit = permits.acquire_owned().await.expect("the in-flight semaphore is never closed");
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_types::body::SdkBody;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A connector that answers after a pause and notes how many calls it
    /// had at once.
    #[derive(Debug, Default)]
    struct Counting {
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }
    impl HttpConnector for Counting {
        fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
            let (now, most) = (self.now.clone(), self.most.clone());
            HttpConnectorFuture::new(async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                Ok(HttpResponse::new(200u16.try_into().unwrap(), SdkBody::empty()))
            })
        }
    }

    #[tokio::test]
    async fn no_more_than_the_bound_are_in_flight_and_every_call_is_answered() {
        let counting = Counting::default();
        let most = counting.most.clone();
        let connector = BoundedConnector { inner: SharedHttpConnector::new(counting), permits: Arc::new(Semaphore::new(3)) };
        let calls = (0..10).map(|_| connector.call(HttpRequest::get("http://127.0.0.1/").unwrap()));
        let answers = futures::future::join_all(calls).await;
        assert!(answers.iter().all(|a| a.as_ref().is_ok_and(|r| r.status().as_u16() == 200)), "every call answered");
        assert_eq!(most.load(Ordering::SeqCst), 3, "at most the bound at once, and the bound reached");
    }
}

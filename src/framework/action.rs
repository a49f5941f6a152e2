//! Actions (Terraform 1.14+): operations a user invokes (`terraform apply
//! -invoke=action.<type>.<name>`) or ties to a resource's lifecycle
//! (`action_trigger`), outside the resource's own plan. They change no state.

use async_trait::async_trait;
use tokio::sync::mpsc::UnboundedSender;

use super::diag::Diags;
use super::provider::Ctx;
use super::schema::Schema;
use super::value::Value;

/// Where an action reports progress while it waits; Terraform shows each message.
#[derive(Clone)]
pub struct Progress(UnboundedSender<String>);

impl Progress {
    pub fn new(tx: UnboundedSender<String>) -> Progress {
        Progress(tx)
    }
    pub fn report(&self, msg: impl Into<String>) {
        // Terraform may have gone; the action finishes regardless.
        let _ = self.0.send(msg.into());
    }
}

#[async_trait]
pub trait Action<C: Send + Sync + 'static>: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    /// Static validation of configuration (may contain unknowns). No AWS calls.
    fn validate(&self, _config: &Value) -> Diags {
        Diags::new()
    }
    /// Run the action; an error diagnostic fails it.
    async fn invoke(&self, client: &C, config: Value, progress: &Progress, ctx: Ctx) -> Diags;
}

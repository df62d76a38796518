//! [`StorageHealth`]: whether the storage answers, as `/readyz` and the dashboard report it.

use tollgate::FailureMode;

use crate::state::ServerState;

/// The storage's state now: `ok` when it accepts a write; `degraded` when it does not but
/// the failure mode (`allow`, `fallback`) answers checks anyway; `storage unreachable` when
/// it does not and checks fail (`deny`).
#[derive(Debug)]
pub(crate) struct StorageHealth {
    pub(crate) status: &'static str,
    /// Whether hits (of some keys at least) are counted in the memory fallback now.
    pub(crate) falling_back: bool,
    pub(crate) mode: FailureMode,
    /// Why the probe failed, if it did.
    pub(crate) error: Option<String>,
}

impl StorageHealth {
    /// Probes the storage of `state`.
    pub(crate) async fn of(state: &ServerState) -> Self {
        let store = state.limiter().store();
        let falling_back = store.is_falling_back();
        let mode = store.mode();
        let probe = state.probe().await;
        let status = match (&probe, mode) {
            (Ok(()), _) => "ok",
            (Err(_), FailureMode::Allow | FailureMode::Fallback) => "degraded",
            (Err(_), _) => "storage unreachable",
        };
        Self {
            status,
            falling_back,
            mode,
            error: probe.err().map(|err| err.to_string()),
        }
    }

    /// Whether checks fail for want of the storage.
    pub(crate) fn is_unreachable(&self) -> bool {
        self.status == "storage unreachable"
    }

    /// As JSON: `status`, `storage` (the URI, credentials redacted), `on_storage_error`,
    /// `falling_back` and, if the probe failed, `error`.
    pub(crate) fn to_json(&self, storage: &str) -> serde_json::Value {
        let mut body = serde_json::json!({
            "status": self.status,
            "storage": storage,
            "on_storage_error": self.mode.to_string(),
            "falling_back": self.falling_back,
        });
        if let Some(error) = &self.error {
            body["error"] = serde_json::Value::from(error.as_str());
        }
        body
    }
}

//! `lease` settings: `[server] lease` (the default for every policy) and `[policies.NAME]
//! lease` (its own), each a duration such as `"250ms"` or `"off"`; quota leases need a
//! shared storage.

use std::collections::BTreeMap;

use tollgate::QuotaLease;
use tollgate_redis::StorageUri;
use toml::Spanned;

use crate::config::ConfigError;
use crate::config::file::Checker;
use crate::config::policy_section::PolicySection;

impl Checker<'_> {
    /// A `lease` value: `"off"`, or a duration within [`tollgate::MIN_LEASE`] and
    /// [`tollgate::MAX_LEASE`].
    pub(super) fn lease(
        &self,
        value: &Option<Spanned<String>>,
        field: &str,
    ) -> Result<Option<QuotaLease>, ConfigError> {
        let Some(raw) = value else {
            return Ok(None);
        };
        if raw.get_ref().trim() == "off" {
            return Ok(Some(QuotaLease::Off));
        }
        let Some(lifetime) = self.duration(value, field).map_err(|_| {
            self.error(
                raw.span(),
                field,
                format!(
                    "invalid lease {:?}; expected \"off\" or a duration with ms, s or m, \
                     such as \"250ms\"",
                    raw.get_ref()
                ),
            )
        })?
        else {
            return Ok(None);
        };
        QuotaLease::lasting(lifetime)
            .map(Some)
            .map_err(|err| self.error(raw.span(), field, err))
    }

    /// `[server] lease`, off unless set; and a check that no lease is turned on over
    /// `memory://`, where every hit is local already.
    pub(super) fn server_lease(
        &self,
        value: &Option<Spanned<String>>,
        policies: &BTreeMap<String, Spanned<PolicySection>>,
        storage: &StorageUri,
    ) -> Result<QuotaLease, ConfigError> {
        let lease = self
            .lease(value, "server.lease")?
            .unwrap_or(QuotaLease::Off);
        if !storage.is_memory() {
            return Ok(lease);
        }
        let policy_leases = policies
            .iter()
            .map(|(name, section)| (format!("policies.{name}.lease"), &section.get_ref().lease));
        for (field, value) in
            std::iter::once(("server.lease".to_owned(), value)).chain(policy_leases)
        {
            if let (Some(raw), Some(QuotaLease::Lasting(_))) = (value, self.lease(value, &field)?) {
                return Err(self.error(
                    raw.span(),
                    field,
                    "quota leases need a shared storage (storage = \"redis://...\"); \
                     over memory:// every hit is local already",
                ));
            }
        }
        Ok(lease)
    }
}

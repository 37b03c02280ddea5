//! Tenants: a token may carry a tenant (`auth.tokens[].tenant`). What such a
//! token ingests is stamped with it (`tenant` label on series, `tenant`
//! field on log records, `tenant` resource attribute on spans), replacing
//! whatever the sender wrote there, so a tenant cannot write as another.
//! The server's gates run each request inside [`TENANT`]'s scope.

use std::sync::Arc;

use sextant_model::{FieldValue, Labels, LogRecord, SpanRecord};

/// The label, field and resource attribute that hold the tenant.
pub const TENANT_KEY: &str = "tenant";

tokio::task_local! {
    /// The tenant of the request being handled, if its token has one.
    pub static TENANT: Option<Arc<str>>;
}

/// The tenant of the request this task is handling.
pub fn current() -> Option<Arc<str>> {
    TENANT.try_with(Clone::clone).ok().flatten()
}

/// `labels` with `tenant` set to `tenant`.
pub fn stamp_labels(labels: &Labels, tenant: &str) -> Labels {
    // The tenant comes last, and the last of a repeated name wins.
    Labels::from_pairs(
        labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .chain([(Arc::<str>::from(TENANT_KEY), Arc::<str>::from(tenant))]),
    )
}

/// Sets the record's `tenant` field.
pub fn stamp_log(record: &mut LogRecord, tenant: &str) {
    record
        .fields
        .insert(TENANT_KEY.to_owned(), FieldValue::Str(tenant.to_owned()));
}

/// Sets the span's `tenant` resource attribute.
pub fn stamp_span(span: &mut SpanRecord, tenant: &str) {
    span.resource
        .insert(TENANT_KEY.to_owned(), FieldValue::Str(tenant.to_owned()));
}

/// Whether a log record belongs to `tenant`.
pub fn log_is(record: &LogRecord, tenant: &str) -> bool {
    matches!(record.fields.get(TENANT_KEY), Some(FieldValue::Str(t)) if t == tenant)
}

/// Whether a span belongs to `tenant`.
pub fn span_is(span: &SpanRecord, tenant: &str) -> bool {
    matches!(span.resource.get(TENANT_KEY), Some(FieldValue::Str(t)) if t == tenant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_cannot_write_as_another_tenant() {
        let labels = Labels::from_pairs([("__name__", "up"), ("tenant", "other"), ("job", "a")]);
        let stamped = stamp_labels(&labels, "team-a");
        assert_eq!(stamped.get("tenant"), Some("team-a"));
        assert_eq!(stamped.get("job"), Some("a"));
        assert_eq!(stamped.len(), 3);
    }
}

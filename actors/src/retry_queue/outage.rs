//! Whether saves can reach Postgres, as the retry queue's attempts and pings find out:
//! `tiercache_postgres_up`, what `GET /v1/caches` shows, and one log line when an outage
//! starts (with its cause and the fix), one when its cause changes, one when it ends.
//! The attempts' own lines stay at debug meanwhile: a retry every few seconds per cache
//! would bury the one line that says what to do.

use crate::store::StoreError;
use chrono::{DateTime, Utc};
use std::time::Instant;

/// An outage in progress, as published (`GET /v1/caches`, `tiercache status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutageView {
    /// What Postgres (or the connection) said.
    pub error: String,
    /// What an operator should do.
    pub fix: String,
    /// Since when.
    pub since: DateTime<Utc>,
}

/// The tracker: at most one outage at a time.
#[derive(Debug, Default)]
pub struct Outage {
    current: Option<(OutageView, Instant)>,
}

/// What an event did to the tracker, for the caller's log and gauge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing to say.
    None,
    /// An outage started.
    Started,
    /// The outage goes on with another cause.
    CauseChanged,
    /// The outage ended after this long.
    Ended(std::time::Duration),
}

impl Outage {
    /// A statement failed with `error`: an outage starts, goes on or changes cause.
    /// Errors that are no outage change nothing.
    pub fn failed(&mut self, error: &StoreError) -> Change {
        let Some(fix) = error.fix().filter(|_| error.is_outage()) else { return Change::None };
        let cause = error.cause();
        match &mut self.current {
            Some((view, _)) if view.fix == fix => {
                view.error = cause;
                Change::None
            }
            Some((view, _)) => {
                view.error = cause;
                view.fix = fix.to_owned();
                Change::CauseChanged
            }
            None => {
                let view = OutageView { error: cause, fix: fix.to_owned(), since: Utc::now() };
                self.current = Some((view, Instant::now()));
                Change::Started
            }
        }
    }

    /// A statement reached Postgres: an outage in progress ends.
    pub fn reached(&mut self) -> Change {
        match self.current.take() {
            Some((_, since)) => Change::Ended(since.elapsed()),
            None => Change::None,
        }
    }

    /// The outage in progress, if any.
    pub fn view(&self) -> Option<&OutageView> {
        self.current.as_ref().map(|(v, _)| v)
    }

    /// Logs what `change` means.
    pub fn log(&self, change: &Change, actor: &'static str) {
        match (change, self.view()) {
            (Change::Started, Some(v)) => tracing::warn!(
                actor, alert = true, error = %v.error, fix = %v.fix,
                "saves cannot reach Postgres; they wait on disk and are sent once this is fixed"
            ),
            (Change::CauseChanged, Some(v)) => tracing::warn!(
                actor, alert = true, error = %v.error, fix = %v.fix,
                "saves still cannot reach Postgres, for another reason"
            ),
            (Change::Ended(after), _) => {
                tracing::info!(actor, duration_ms = after.as_millis() as u64, "saves reach Postgres again")
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(cause: &str, fix: &'static str) -> StoreError {
        StoreError::Refused { cause: cause.into(), fix }
    }

    #[test]
    fn an_outage_starts_once_changes_cause_and_ends() {
        let mut o = Outage::default();
        assert_eq!(o.reached(), Change::None);
        assert_eq!(o.failed(&StoreError::Unavailable("refused".into())), Change::Started);
        assert_eq!(o.failed(&StoreError::Unavailable("refused again".into())), Change::None);
        assert_eq!(o.view().unwrap().error, "postgres unavailable: refused again");
        assert_eq!(o.failed(&refused("28P01: password authentication failed", "check it")), Change::CauseChanged);
        assert_eq!(o.view().unwrap().fix, "check it");
        assert!(o.view().is_some());
        assert!(matches!(o.reached(), Change::Ended(_)));
        assert!(o.view().is_none());
        assert_eq!(o.reached(), Change::None);
    }

    #[test]
    fn errors_of_the_statement_itself_are_no_outage() {
        let mut o = Outage::default();
        assert_eq!(o.failed(&StoreError::Rejected("23514: check".into())), Change::None);
        assert_eq!(o.failed(&StoreError::Transient("40001".into())), Change::None);
        assert!(o.view().is_none());
        assert_eq!(o.failed(&StoreError::NoProject("p".into())), Change::Started);
    }
}

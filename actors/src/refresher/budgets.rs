//! The rate budget of each upstream application. Strava counts requests per
//! application, so every strava source of one application spends one budget, and a
//! reload that rebuilds a source hands it the readings it had.

use super::sources::ratelimit::Budget;
use super::sources::Source;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One budget per application, owned by the refresher.
#[derive(Default)]
pub(super) struct Budgets(HashMap<String, Arc<Mutex<Budget>>>);

impl Budgets {
    /// Hands each strava source among `sources` its application's budget.
    pub(super) fn share<'a>(&mut self, sources: impl Iterator<Item = &'a Arc<dyn Source>>) {
        for source in sources {
            if let Some(strava) = source.as_strava() {
                strava.share_budget(self.0.entry(strava.application()).or_default().clone());
            }
        }
    }
}

//! GETs against Strava's API that respect its rate-limit budget and renew the access
//! token once on a 401.

use super::super::client::{Deadline, Request, Response};
use super::super::ratelimit::{self, Budget};
use super::super::SourceError;
use super::StravaSource;
use std::sync::PoisonError;

impl StravaSource {
    pub(super) fn budget(&self) -> std::sync::MutexGuard<'_, Budget> {
        self.budget.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A GET with the access token: 401 renews the token once per fetch, 429 and a
    /// spent budget become [`SourceError::RateLimited`]; other statuses are returned.
    pub(super) async fn api_get(
        &self,
        url: &str,
        deadline: Deadline,
        retried: &mut bool,
    ) -> Result<Response, SourceError> {
        loop {
            if let Err(until) = self.budget().check(self.clock.now()) {
                return Err(SourceError::RateLimited { until });
            }
            let token = self.access_token(deadline).await?;
            let request = Request::get(url)
                .header("Authorization", format!("Bearer {token}"))
                .header("Accept", "application/json");
            let response = self.client.send(request, deadline).await?;
            let readings = ratelimit::parse(&response.headers);
            let now = self.clock.now();
            match response.status {
                429 => return Err(SourceError::RateLimited { until: self.budget().rejected(&readings, now) }),
                401 if !*retried => {
                    self.budget().observe(&readings, now);
                    *retried = true;
                    self.forget_access_token(&token).await;
                }
                401 => {
                    return Err(SourceError::Permanent(
                        "Strava refused a freshly renewed access token (HTTP 401)".into(),
                    ))
                }
                _ => {
                    self.budget().observe(&readings, now);
                    return Ok(response);
                }
            }
        }
    }
}

//! GETs against Strava's API that respect its rate-limit budget (the application's,
//! shared by its sources) and renew the access token once on a 401.

use super::super::client::{Deadline, Request, Response};
use super::super::ratelimit;
use super::super::SourceError;
use super::StravaSource;

/// One fetch's calls: the time they share, whether the access token was renewed after
/// a 401 already, and whether they serve pushed work (counted against its share).
#[derive(Debug, Clone, Copy)]
pub(super) struct Call {
    pub deadline: Deadline,
    pub retried: bool,
    pub pushed: bool,
}

impl Call {
    pub(super) fn new(deadline: Deadline, pushed: bool) -> Self {
        Self { deadline, retried: false, pushed }
    }

    /// The same fetch's calls for pushed work.
    pub(super) fn for_pushed(self) -> Self {
        Self { pushed: true, ..self }
    }
}

/// How a GET with a given access token ended.
pub(super) enum Answer {
    /// Any status but 401 and 429 (a 429 is an error).
    Response(Response),
    /// 401: the access token was refused.
    Unauthorized,
}

impl StravaSource {
    /// One GET with `token`: a spent budget or a 429 is [`SourceError::RateLimited`];
    /// a pushed call counts against the pushed share.
    pub(super) async fn get_with(&self, url: &str, token: &str, call: &Call) -> Result<Answer, SourceError> {
        let now = self.clock.now();
        self.with_budget(|b| b.check(now)).map_err(|until| SourceError::RateLimited { until })?;
        let request =
            Request::get(url).header("Authorization", format!("Bearer {token}")).header("Accept", "application/json");
        if call.pushed {
            self.with_budget(|b| b.record_pushed(now));
        }
        let response = self.client.send(request, call.deadline).await?;
        let readings = ratelimit::parse(&response.headers);
        let now = self.clock.now();
        match response.status {
            429 => Err(SourceError::RateLimited { until: self.with_budget(|b| b.rejected(&readings, now)) }),
            401 => {
                self.with_budget(|b| b.observe(&readings, now));
                Ok(Answer::Unauthorized)
            }
            _ => {
                self.with_budget(|b| b.observe(&readings, now));
                Ok(Answer::Response(response))
            }
        }
    }

    /// A GET with the access token: 401 renews the token once per fetch, 429 and a
    /// spent budget become [`SourceError::RateLimited`]; other statuses are returned.
    pub(super) async fn api_get(&self, url: &str, call: &mut Call) -> Result<Response, SourceError> {
        loop {
            // Before the token too: a renewal is a call as well.
            let now = self.clock.now();
            self.with_budget(|b| b.check(now)).map_err(|until| SourceError::RateLimited { until })?;
            let token = self.access_token(call.deadline).await?;
            match self.get_with(url, &token, call).await? {
                Answer::Response(response) => return Ok(response),
                Answer::Unauthorized if !call.retried => {
                    call.retried = true;
                    self.forget_access_token(&token).await;
                }
                Answer::Unauthorized => {
                    return Err(SourceError::Permanent(
                        "Strava refused a freshly renewed access token (HTTP 401)".into(),
                    ))
                }
            }
        }
    }
}

//! The sources that GET one JSON document, conditionally (`http`, `justgiving`): what
//! they share is here, what differs (the request, the upstream's name, a status the
//! upstream words itself) is their [`JsonEndpoint`].

use super::client::{ensure_json, status_error, Deadline, HttpClient, Request, Response};
use super::clock::Clock;
use super::conditional::Conditional;
use super::{BoxFuture, FetchRequest, Fetched, Source, SourceError};
use std::sync::Arc;

/// One upstream's JSON document.
pub trait JsonEndpoint: Send + Sync + 'static {
    /// The source's `kind`.
    const KIND: &'static str;
    /// Who answers, as errors name it ("the upstream").
    const WHO: &'static str;

    /// The GET request, before it is made conditional.
    fn request(&self) -> Request;

    /// A status this upstream words itself (a refused credential), if any.
    fn refuse(&self, _response: &Response) -> Option<SourceError> {
        None
    }
}

/// A source that GETs its endpoint's document, made conditional by the last answer's
/// `ETag`/`Last-Modified` (see [`Conditional`]).
pub struct JsonSource<E> {
    endpoint: E,
    clock: Arc<dyn Clock>,
    client: HttpClient,
    conditional: Conditional,
}

impl<E: JsonEndpoint> JsonSource<E> {
    /// The source of `endpoint`; secrets in it are already resolved by the config.
    pub fn new(endpoint: E, clock: Arc<dyn Clock>, client: HttpClient, conditional: Conditional) -> Self {
        Self { endpoint, clock, client, conditional }
    }

    /// A 304 to a conditional request changed nothing; a status the endpoint words is
    /// its error; any other failure status is [`status_error`]; a success must be JSON,
    /// and its validators are remembered.
    async fn fetch_inner(&self, request: FetchRequest) -> Result<Fetched, SourceError> {
        let (get, conditional) = self.conditional.apply(self.endpoint.request(), request.previous.as_deref()).await;
        let response = self.client.send(get, Deadline::after(request.timeout)).await?;
        if response.status == 304 && conditional {
            return Ok(Fetched::not_modified());
        }
        if let Some(refused) = self.endpoint.refuse(&response) {
            return Err(refused);
        }
        if !response.is_success() {
            return Err(status_error(&response, E::WHO, self.clock.now()));
        }
        ensure_json(&response.body, &format!("{}'s answer", E::WHO))?;
        self.conditional.remember(&response).await;
        Ok(Fetched::new(response.body, Vec::new()))
    }
}

impl<E: JsonEndpoint> Source for JsonSource<E> {
    fn kind(&self) -> &'static str {
        E::KIND
    }

    fn builds_on_previous(&self) -> bool {
        true
    }

    fn upstream_calls(&self) -> u64 {
        self.client.calls()
    }

    fn fetch(&self, request: FetchRequest) -> BoxFuture<'_, Result<Fetched, SourceError>> {
        Box::pin(self.fetch_inner(request))
    }
}

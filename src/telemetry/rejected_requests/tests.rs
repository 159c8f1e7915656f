//! Recognising actix-http's records of malformed requests, and nothing else.

use super::*;
use std::sync::Mutex;
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn reasons_come_from_actix_http_messages() {
    let cases = [
        ("stream error: request parse error: invalid method specified", Some("method")),
        ("stream error: request parse error: URI error: invalid uri character", Some("uri")),
        ("stream error: request parse error: invalid HTTP version specified", Some("version")),
        ("stream error: request parse error: invalid Header provided", Some("header")),
        ("stream error: request parse error: message head is too large", Some("too_large")),
        ("stream error: request parse error: message is incomplete", Some("incomplete")),
        ("stream error: request parse error: UTF-8 error: invalid utf-8", Some("utf8")),
        ("stream error: request parse error: timeout", Some("malformed")),
        ("stream error: I/O error: Connection reset by peer (os error 104)", Some("io")),
        ("stream error: internal error", None),
        ("stream error: service error", None),
        ("Response payload stream error: boom", None),
        ("write zero; closing", None),
    ];
    for (message, expected) in cases {
        assert_eq!(reason(message), expected, "{message}");
    }
}

#[test]
fn the_sampler_lets_one_through_per_interval_and_counts_the_rest() {
    let start = Instant::now().checked_sub(SAMPLE_EVERY * 3).expect("uptime");
    let sampler = Sampler { start, ..Sampler::default() };
    assert_eq!(sampler.take(), Some(0));
    assert_eq!(sampler.take(), None);
    assert_eq!(sampler.take(), None);
    // As if the last line had been written at `start`, three intervals ago.
    sampler.last.store(1, Ordering::Relaxed);
    assert_eq!(sampler.take(), Some(2));
    assert_eq!(sampler.take(), None);
}

/// Records the level and message of every event that reaches it.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(Level, String)>>>);

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut message = Message::default();
        event.record(&mut message);
        self.0.lock().unwrap().push((*event.metadata().level(), message.0));
    }
}

#[test]
fn client_errors_are_counted_and_kept_out_of_the_log_and_the_rest_passes() {
    let layer = RejectedRequests::default();
    let family = Family::<ReasonLabel, Counter>::default();
    layer.count_into(family.clone());
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(layer).with(recorder.clone());
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..3 {
            tracing::error!(target: "actix_http::h1::dispatcher", "stream error: {}", "request parse error: invalid method specified");
        }
        tracing::error!(target: "actix_http::h1::dispatcher", "stream error: {}", "I/O error: Connection reset by peer");
        tracing::error!(target: "actix_http::h1::dispatcher", "stream error: {}", "internal error");
        tracing::error!(target: "other", "stream error: request parse error: invalid method specified");
        tracing::info!("unrelated");
    });
    assert_eq!(family.get_or_create(&ReasonLabel { reason: "method" }).get(), 3);
    assert_eq!(family.get_or_create(&ReasonLabel { reason: "io" }).get(), 1);
    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (Level::ERROR, "stream error: internal error".to_owned()),
            (Level::ERROR, "stream error: request parse error: invalid method specified".to_owned()),
            (Level::INFO, "unrelated".to_owned()),
        ]
    );
}

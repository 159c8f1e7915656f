//! The shelf: what a save stores on its own thread is what every reader sees next.

use super::{MemoryView, Shelf};
use crate::domain::{CacheName, Checksum, Document};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

fn doc(name: &str, version: u64, body: &'static str) -> Arc<Document> {
    let body = Bytes::from_static(body.as_bytes());
    let name = CacheName::parse(name).expect("name");
    Arc::new(Document::new(name, version, Checksum::of(&body), None, None, chrono::Utc::now(), body))
}

fn served(view: &MemoryView, name: &str) -> Option<u64> {
    view.fresh(&CacheName::parse(name).expect("name"), Duration::from_secs(60)).map(|e| e.doc.version)
}

#[test]
fn a_store_is_seen_by_every_view_once_it_returns() {
    let shelf = Arc::new(Shelf::new());
    let view = MemoryView(shelf.clone());
    let entry = shelf.store(doc("a", 3, "{\"v\":3}"));
    assert_eq!(entry.doc.version, 3);
    assert_eq!(served(&view, "a"), Some(3));
    assert_eq!(served(&view.clone(), "a"), Some(3), "a clone reads the same shelf");
}

#[test]
fn an_older_version_never_replaces_a_newer_one() {
    let shelf = Arc::new(Shelf::new());
    let view = MemoryView(shelf.clone());
    shelf.store(doc("a", 5, "{\"v\":5}"));
    let kept = shelf.store(doc("a", 4, "{\"v\":4}"));
    assert_eq!(kept.doc.version, 5, "the entry memory holds is answered");
    assert_eq!(served(&view, "a"), Some(5));
    shelf.store(doc("a", 6, "{\"v\":6}"));
    assert_eq!(served(&view, "a"), Some(6));
}

#[test]
fn evict_and_clear_are_published() {
    let shelf = Arc::new(Shelf::new());
    let view = MemoryView(shelf.clone());
    shelf.store(doc("a", 1, "{}"));
    shelf.store(doc("b", 1, "{}"));
    shelf.evict(&CacheName::parse("a").expect("name"));
    assert_eq!((served(&view, "a"), served(&view, "b")), (None, Some(1)));
    shelf.clear();
    assert_eq!(served(&view, "b"), None);
}

#[test]
fn stores_from_many_threads_keep_the_newest_version() {
    let shelf = Arc::new(Shelf::new());
    let view = MemoryView(shelf.clone());
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let shelf = shelf.clone();
            s.spawn(move || {
                for v in 0..200u64 {
                    shelf.store(doc("a", v * 4 + t, "{}"));
                }
            });
        }
    });
    assert_eq!(served(&view, "a"), Some(199 * 4 + 3));
}

#[test]
fn a_followed_version_never_brings_back_an_evicted_cache() {
    let shelf = Arc::new(Shelf::new());
    let view = MemoryView(shelf.clone());
    assert!(!shelf.follow(doc("cold", 2, "{}"), false), "a cold cache stays cold");
    assert_eq!(served(&view, "cold"), None);
    assert!(shelf.follow(doc("cold", 2, "{}"), true), "unless a load of it is in flight");
    shelf.store(doc("held", 1, "{}"));
    assert!(shelf.follow(doc("held", 2, "{}"), false));
    assert_eq!(served(&view, "held"), Some(2));
    // A DELETE evicts it: a version adopted before the delete finds nothing to replace.
    shelf.evict(&CacheName::parse("held").expect("name"));
    assert!(!shelf.follow(doc("held", 3, "{}"), false));
    assert_eq!(served(&view, "held"), None);
}

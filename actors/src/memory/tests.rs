//! The shelf: what a save stores on its own thread is what every reader sees next, and
//! nothing marked before an evict is stored after it.

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
    let before = shelf.mark(&CacheName::parse("b").expect("name"));
    shelf.clear();
    assert_eq!(served(&view, "b"), None);
    assert!(shelf.store_marked(doc("b", 2, "{}"), &before).is_none(), "a restart voids the marks");
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
    let cold = CacheName::parse("cold").expect("name");
    assert!(!shelf.follow(doc("cold", 2, "{}"), false, &shelf.mark(&cold)), "a cold cache stays cold");
    assert_eq!(served(&view, "cold"), None);
    assert!(shelf.follow(doc("cold", 2, "{}"), true, &shelf.mark(&cold)), "unless a load of it is in flight");
    let held = CacheName::parse("held").expect("name");
    shelf.store(doc("held", 1, "{}"));
    assert!(shelf.follow(doc("held", 2, "{}"), false, &shelf.mark(&held)));
    assert_eq!(served(&view, "held"), Some(2));
    // A DELETE evicts it: a version adopted before the delete finds nothing to replace.
    shelf.evict(&held);
    assert!(!shelf.follow(doc("held", 3, "{}"), false, &shelf.mark(&held)));
    assert_eq!(served(&view, "held"), None);
}

/// The file tier took a version, then a DELETE evicted the cache while a load of it was
/// in flight: following that version (which predates the delete) is refused although
/// memory is loading the cache; one adopted after the delete is followed.
#[test]
fn a_version_taken_before_an_evict_is_not_followed_into_a_load() {
    let shelf = Arc::new(Shelf::new());
    let view = MemoryView(shelf.clone());
    let name = CacheName::parse("a").expect("name");
    let before = shelf.mark(&name);
    shelf.evict(&name);
    assert!(!shelf.follow(doc("a", 5, "{}"), true, &before), "adopted before the delete");
    assert_eq!(served(&view, "a"), None);
    assert!(shelf.follow(doc("a", 6, "{}"), true, &shelf.mark(&name)), "adopted after it");
    assert_eq!(served(&view, "a"), Some(6));
}

/// What a load or a save read or wrote below memory before an evict is not stored after
/// it; an older entry stored since (after the evict) goes, so the file answers.
#[test]
fn a_store_marked_before_an_evict_is_refused() {
    let shelf = Arc::new(Shelf::new());
    let view = MemoryView(shelf.clone());
    let name = CacheName::parse("a").expect("name");
    let before = shelf.mark(&name);
    shelf.store(doc("a", 4, "{}"));
    shelf.evict(&name);
    assert!(shelf.store_marked(doc("a", 4, "{}"), &before).is_none(), "the deleted version");
    assert_eq!(served(&view, "a"), None);

    let after = shelf.mark(&name);
    assert_eq!(shelf.store_marked(doc("a", 5, "{}"), &after).map(|e| e.doc.version), Some(5));
    assert!(shelf.store_marked(doc("a", 6, "{}"), &before).is_none());
    assert_eq!(served(&view, "a"), None, "5 may be older than the file: memory goes cold");
    assert!(shelf.store_marked(doc("a", 7, "{}"), &after).is_some(), "a mark stays good until an evict");
    assert!(shelf.store_marked(doc("a", 6, "{}"), &before).is_none());
    assert_eq!(served(&view, "a"), Some(7), "a newer entry stays");
}

/// Marks nobody holds are pruned: the shelf does not grow with every name ever marked.
#[test]
fn marks_are_pruned_once_dropped() {
    let shelf = Arc::new(Shelf::new());
    let kept = shelf.mark(&CacheName::parse("kept").expect("name"));
    for i in 0..10_000 {
        drop(shelf.mark(&CacheName::parse(&format!("c{i}")).expect("name")));
    }
    let marks = shelf.held.lock().expect("lock").marks.len();
    assert!(marks < 200, "{marks} marks held");
    let name = CacheName::parse("kept").expect("name");
    assert!(shelf.store_marked(doc("kept", 1, "{}"), &kept).is_some(), "a held mark survives the prunes");
    assert_eq!(shelf.get(&name).map(|e| e.doc.version), Some(1));
}

//! The file tier's rules as pure functions of what the index says is on disk: which
//! version a write gets, whether a version made elsewhere is adopted, what a remove
//! leaves. The actor's methods do the I/O these decide.

use super::OnDisk;
use crate::domain::Precondition;

/// The version a new write of a cache gets, or the current ETag when `precondition`
/// does not hold. It goes above what disk holds (a tombstone's version included) and
/// above `floor`, the newest version known elsewhere (Postgres, a corrupt file, a
/// purged envelope): versions never repeat.
///
/// # Errors
/// The current ETag (if any) when `If-Match` does not hold.
pub(super) fn next_version(
    current: Option<&OnDisk>,
    floor: u64,
    precondition: &Precondition,
) -> Result<u64, Option<String>> {
    let current_etag = current.and_then(|c| c.etag.clone());
    if !precondition.holds(current_etag.as_deref()) {
        return Err(current_etag);
    }
    Ok(current.map_or(0, |c| c.version).max(floor) + 1)
}

/// Whether a version made elsewhere (`version`, read from Postgres or rebased by it)
/// replaces what disk holds. With `expected` (a rebase of exactly that save, or the
/// version the listener compared the row with), only if disk still holds that version,
/// live (`Some(0)`: still nothing). Otherwise the newer side wins: not over a live
/// envelope or a tombstone of the same version or newer; a corrupt file (no ETag, no
/// tombstone) never stands in the way.
pub(super) fn adopts(current: Option<&OnDisk>, version: u64, expected: Option<u64>) -> bool {
    let still = |v: u64| match current {
        Some(d) => d.version == v && d.etag.is_some(),
        None => v == 0,
    };
    if expected.is_some_and(|v| !still(v)) {
        return false;
    }
    !current.is_some_and(|d| d.version >= version && (d.etag.is_some() || d.deleted))
}

/// Whether disk already holds exactly this version with this ETag, live: adopting it
/// again writes nothing, and whoever adopts it may still put it in memory (a
/// compare-and-set's own adopt that the listener beat to the file).
pub(super) fn already_holds(current: Option<&OnDisk>, version: u64, etag: &str) -> bool {
    current.is_some_and(|d| !d.deleted && d.version == version && d.etag.as_deref() == Some(etag))
}

/// What a remove leaves: the tombstone's version (the last one known, so versions keep
/// increasing; 0 for a cache unknown here, whose row Postgres may still hold) and
/// whether a live envelope was there.
pub(super) fn tombstone(current: Option<&OnDisk>) -> (u64, bool) {
    (current.map_or(0, |d| d.version), current.is_some_and(|d| d.etag.is_some()))
}

/// Whether a tombstone may go (Postgres has the delete): only if the cache is still
/// deleted here, not saved again since.
pub(super) fn forgets_tombstone(current: Option<&OnDisk>) -> bool {
    current.is_some_and(|d| d.deleted)
}

/// Whether an upstream 304 may rewrite the envelope with new fetch times: only if disk
/// still holds exactly that version with that ETag.
pub(super) fn touches(current: Option<&OnDisk>, version: u64, etag: &str) -> bool {
    current.is_some_and(|d| d.version == version && d.etag.as_deref() == Some(etag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(version: u64, etag: &str) -> OnDisk {
        OnDisk { version, etag: Some(etag.into()), deleted: false, last_fetch: None, last_rich_fetch: None }
    }

    fn corrupt(version: u64) -> OnDisk {
        OnDisk { version, etag: None, deleted: false, last_fetch: None, last_rich_fetch: None }
    }

    fn deleted(version: u64) -> OnDisk {
        OnDisk::tombstone(version)
    }

    fn one_of(tag: &str) -> Precondition {
        Precondition::OneOf(vec![tag.into()])
    }

    #[test]
    fn a_first_write_is_version_one_or_above_the_floor() {
        assert_eq!(next_version(None, 0, &Precondition::None), Ok(1));
        assert_eq!(next_version(None, 7, &Precondition::None), Ok(8));
    }

    #[test]
    fn a_write_goes_above_disk_and_floor_whichever_is_higher() {
        assert_eq!(next_version(Some(&live(3, "e3")), 0, &Precondition::None), Ok(4));
        assert_eq!(next_version(Some(&live(3, "e3")), 9, &Precondition::None), Ok(10));
        assert_eq!(next_version(Some(&deleted(5)), 2, &Precondition::None), Ok(6), "above the tombstone");
        assert_eq!(next_version(Some(&corrupt(4)), 0, &Precondition::None), Ok(5));
    }

    #[test]
    fn if_match_is_checked_against_the_live_envelope() {
        assert_eq!(next_version(Some(&live(3, "e3")), 0, &one_of("e3")), Ok(4));
        assert_eq!(next_version(Some(&live(3, "e3")), 0, &one_of("W/e3")), Ok(4), "weak tags match");
        assert_eq!(next_version(Some(&live(3, "e3")), 0, &one_of("e2")), Err(Some("e3".into())));
        assert_eq!(next_version(Some(&live(3, "e3")), 0, &Precondition::Exists), Ok(4));
        assert_eq!(next_version(None, 0, &Precondition::Exists), Err(None));
        assert_eq!(next_version(Some(&deleted(3)), 0, &Precondition::Exists), Err(None), "deleted: nothing exists");
        assert_eq!(next_version(Some(&corrupt(3)), 0, &one_of("e3")), Err(None), "corrupt: nothing to match");
    }

    #[test]
    fn the_newer_side_wins_an_adopt() {
        assert!(adopts(None, 1, None), "nothing here");
        assert!(adopts(Some(&live(2, "e2")), 3, None), "newer row");
        assert!(!adopts(Some(&live(3, "e3")), 3, None), "same version");
        assert!(!adopts(Some(&live(4, "e4")), 3, None), "older row");
    }

    #[test]
    fn the_same_version_with_the_same_etag_is_already_held() {
        assert!(already_holds(Some(&live(3, "e3")), 3, "e3"));
        assert!(!already_holds(Some(&live(3, "e3")), 3, "other"), "another document at that version");
        assert!(!already_holds(Some(&live(2, "e3")), 3, "e3"));
        assert!(!already_holds(Some(&deleted(3)), 3, "e3"), "a tombstone holds nothing");
        assert!(!already_holds(Some(&corrupt(3)), 3, "e3"));
        assert!(!already_holds(None, 3, "e3"));
    }

    #[test]
    fn a_tombstone_keeps_an_older_or_equal_row_out_but_not_a_newer_one() {
        assert!(!adopts(Some(&deleted(3)), 3, None), "the delete has not reached Postgres");
        assert!(!adopts(Some(&deleted(4)), 2, None));
        assert!(adopts(Some(&deleted(3)), 4, None), "saved again elsewhere after the delete");
    }

    #[test]
    fn a_corrupt_file_never_stands_in_the_way() {
        assert!(adopts(Some(&corrupt(5)), 3, None));
        assert!(adopts(Some(&corrupt(5)), 5, None));
    }

    #[test]
    fn a_rebase_is_adopted_only_over_exactly_the_save_sent() {
        assert!(adopts(Some(&live(3, "e3")), 7, Some(3)));
        assert!(!adopts(Some(&live(4, "e4")), 7, Some(3)), "saved again meanwhile");
        assert!(!adopts(Some(&deleted(3)), 7, Some(3)), "deleted meanwhile");
        assert!(!adopts(Some(&corrupt(3)), 7, Some(3)), "found corrupt meanwhile");
        assert!(!adopts(None, 7, Some(3)), "gone meanwhile");
        assert!(adopts(None, 7, Some(0)), "still nothing here");
        assert!(!adopts(Some(&live(1, "e1")), 7, Some(0)), "saved here meanwhile");
        assert!(!adopts(Some(&live(3, "e3")), 3, Some(3)), "and still only a newer version");
    }

    #[test]
    fn a_remove_keeps_the_last_version() {
        assert_eq!(tombstone(Some(&live(4, "e4"))), (4, true));
        assert_eq!(tombstone(Some(&deleted(4))), (4, false), "deleting twice");
        assert_eq!(tombstone(Some(&corrupt(2))), (2, false));
        assert_eq!(tombstone(None), (0, false), "unknown here: a tombstone all the same");
    }

    #[test]
    fn a_tombstone_goes_only_while_deleted() {
        assert!(forgets_tombstone(Some(&deleted(4))));
        assert!(!forgets_tombstone(Some(&live(5, "e5"))), "saved again since");
        assert!(!forgets_tombstone(None));
    }

    #[test]
    fn a_304_rewrites_only_the_same_version_and_data() {
        assert!(touches(Some(&live(4, "e4")), 4, "e4"));
        assert!(!touches(Some(&live(5, "e5")), 4, "e4"), "saved meanwhile");
        assert!(!touches(Some(&live(4, "x")), 4, "e4"), "other data at that version");
        assert!(!touches(Some(&deleted(4)), 4, "e4"));
        assert!(!touches(None, 4, "e4"));
    }
}

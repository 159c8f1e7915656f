//! Changes an upstream pushed to the daemon (Strava's webhook events), as the refresher
//! hands them to a source: which activity, and whether it is new or changed, or gone.

/// What happened to one activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Created: fetch it unless it is held already (a list read after its creation
    /// brought it).
    Create,
    /// Updated: fetch it.
    Update,
    /// Deleted: remove it, no upstream call.
    Delete,
}

/// One pushed change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityChange {
    /// The activity's id.
    pub id: u64,
    /// What happened.
    pub change: Change,
}

/// The net effect of `changes`, in order of first appearance.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Net {
    /// Created, not updated or deleted since.
    pub created: Vec<u64>,
    /// Updated (or created and updated), not deleted since.
    pub updated: Vec<u64>,
    /// Deleted last.
    pub deleted: Vec<u64>,
}

/// The net effect of `changes` in order: a delete wins if it came last, an update
/// outweighs a create, and duplicates (Strava retries) collapse.
pub fn net(changes: &[ActivityChange]) -> Net {
    let mut last: Vec<(u64, Change)> = Vec::new();
    for c in changes {
        match last.iter_mut().find(|(id, _)| *id == c.id) {
            Some((_, seen)) => {
                *seen = match (*seen, c.change) {
                    (_, Change::Delete) => Change::Delete,
                    (Change::Update, _) | (_, Change::Update) => Change::Update,
                    (_, other) => other,
                }
            }
            None => last.push((c.id, c.change)),
        }
    }
    let pick = |want: Change| last.iter().filter(|(_, c)| *c == want).map(|(id, _)| *id).collect();
    Net { created: pick(Change::Create), updated: pick(Change::Update), deleted: pick(Change::Delete) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_win_when_last_updates_outweigh_creates_and_duplicates_collapse() {
        let c = |id, change| ActivityChange { id, change };
        let got = net(&[
            c(1, Change::Create),
            c(1, Change::Create),
            c(2, Change::Create),
            c(2, Change::Delete),
            c(3, Change::Delete),
            c(3, Change::Create),
            c(4, Change::Create),
            c(4, Change::Update),
            c(4, Change::Create),
        ]);
        assert_eq!(got, Net { created: vec![1, 3], updated: vec![4], deleted: vec![2] });
    }
}

//! Merging activities into the held document: a full list keeps earlier detail, an
//! incremental list or a webhook's activity goes in by id, a delete takes one out.

use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// An activity's id as a map key (numbers and strings alike).
fn id_of(activity: &Value) -> Option<String> {
    activity.get("id").map(Value::to_string)
}

pub(super) fn start_date(activity: &Value) -> &str {
    activity.get("start_date").and_then(Value::as_str).unwrap_or("")
}

/// The `activities` of a document body, if it has them.
pub(super) fn activities_of(body: &[u8]) -> Option<Vec<Value>> {
    match serde_json::from_slice::<Value>(body).ok()? {
        Value::Object(mut doc) => match doc.remove("activities")? {
            Value::Array(items) => Some(items),
            _ => None,
        },
        _ => None,
    }
}

/// The newest `start_date` held, as epoch seconds (what `after=` takes).
pub(super) fn newest_start(activities: &[Value]) -> Option<i64> {
    activities
        .iter()
        .filter_map(|a| chrono::DateTime::parse_from_rfc3339(start_date(a)).ok())
        .map(|t| t.timestamp())
        .max()
}

/// Activities that are still listed keep the detail fields an earlier rich refresh
/// merged into them; the new summary wins where both have a field.
pub(super) fn keep_previous_detail(activities: &mut [Value], previous: Vec<Value>) {
    let mut by_id: HashMap<String, Map<String, Value>> = HashMap::new();
    for item in previous {
        if let (Some(id), Value::Object(item)) = (id_of(&item), item) {
            by_id.insert(id, item);
        }
    }
    for activity in activities.iter_mut() {
        let Some(mut merged) = id_of(activity).and_then(|id| by_id.remove(&id)) else { continue };
        let Value::Object(summary) = activity else { continue };
        merged.extend(std::mem::take(summary));
        *summary = merged;
    }
}

/// Puts `fresh` activities into `held`: one already held is updated in place (its
/// fields overwritten, others kept), a new one goes where its start date puts it
/// (newest first; an activity uploaded late lands among those of its day).
pub(super) fn upsert(held: &mut Vec<Value>, fresh: Vec<Value>) {
    let index: HashMap<String, usize> = held.iter().enumerate().filter_map(|(i, a)| Some((id_of(a)?, i))).collect();
    let mut added = Vec::new();
    for item in fresh {
        match id_of(&item).and_then(|id| index.get(&id).copied()) {
            Some(i) => {
                if let (Value::Object(old), Value::Object(new)) = (&mut held[i], item) {
                    old.extend(new);
                }
            }
            None => added.push(item),
        }
    }
    if added.is_empty() {
        return;
    }
    held.splice(0..0, added);
    // Stable: activities of the same start keep their order, new ones first.
    held.sort_by(|a, b| start_date(b).cmp(start_date(a)));
}

/// Removes the activities whose ids are in `ids`.
pub(super) fn remove(held: &mut Vec<Value>, ids: &[u64]) {
    held.retain(|a| !a.get("id").and_then(Value::as_u64).is_some_and(|id| ids.contains(&id)));
}

/// The numeric ids of `activities`.
pub(super) fn activities_of_ids(activities: &[Value]) -> Vec<u64> {
    activities.iter().filter_map(|a| a.get("id").and_then(Value::as_u64)).collect()
}

/// A merge done again on another document: `merged` is what a fetch made of `base`
/// (the activities held when it started); the activities it added or changed go into
/// `current` by id (their fields win), those it dropped go out, and every other
/// activity of `current` (a PUT's, made meanwhile) stays as it is.
pub(super) fn three_way(base: &[Value], merged: &[Value], mut current: Vec<Value>) -> Vec<Value> {
    let before: HashMap<String, &Value> = base.iter().filter_map(|a| Some((id_of(a)?, a))).collect();
    let kept: HashSet<String> = merged.iter().filter_map(id_of).collect();
    let dropped: HashSet<&String> = before.keys().filter(|id| !kept.contains(*id)).collect();
    let changed: Vec<Value> =
        merged.iter().filter(|a| id_of(a).and_then(|id| before.get(&id).copied()) != Some(*a)).cloned().collect();
    current.retain(|a| !id_of(a).is_some_and(|id| dropped.contains(&id)));
    upsert(&mut current, changed);
    current
}

/// [`three_way`] on a whole document body: its other fields stay, `timestamp` is the
/// fetch's. `None` when `current` is not a document with activities.
pub(super) fn rebase_body(base: &[Value], merged: &[Value], timestamp: &str, current: &[u8]) -> Option<Vec<u8>> {
    let Value::Object(mut doc) = serde_json::from_slice::<Value>(current).ok()? else { return None };
    let Some(Value::Array(held)) = doc.remove("activities") else { return None };
    doc.insert("timestamp".into(), Value::String(timestamp.to_owned()));
    doc.insert("activities".into(), Value::Array(three_way(base, merged, held)));
    serde_json::to_vec(&Value::Object(doc)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_merge_done_again_keeps_what_was_saved_meanwhile() {
        let base = vec![json!({"id": 1, "start_date": "2024-01-01T00:00:00Z"}), json!({"id": 2, "name": "a"})];
        // The fetch added 3, changed 2 and dropped 1.
        let merged = vec![json!({"id": 3, "start_date": "2024-01-03T00:00:00Z"}), json!({"id": 2, "name": "b"})];
        // Meanwhile a PUT added 9 and renamed 1.
        let current = vec![
            json!({"id": 9, "start_date": "2024-01-09T00:00:00Z"}),
            json!({"id": 2, "name": "a", "note": "put"}),
            json!({"id": 1, "name": "put"}),
        ];
        let out = three_way(&base, &merged, current);
        let ids: Vec<_> = out.iter().map(|a| a["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, [9, 3, 2]);
        assert_eq!(out[2], json!({"id": 2, "name": "b", "note": "put"}));
    }

    #[test]
    fn upsert_updates_in_place_and_puts_new_ones_first_newest_first() {
        let mut held = vec![
            json!({"id": 2, "name": "old", "description": "kept", "start_date": "2024-01-02T00:00:00Z"}),
            json!({"id": 1, "start_date": "2024-01-01T00:00:00Z"}),
        ];
        upsert(
            &mut held,
            vec![
                json!({"id": 3, "start_date": "2024-01-03T00:00:00Z"}),
                json!({"id": 2, "name": "new"}),
                json!({"id": 4, "start_date": "2024-01-04T00:00:00Z"}),
            ],
        );
        let ids: Vec<_> = held.iter().map(|a| a["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, [4, 3, 2, 1]);
        assert_eq!(held[2]["name"], "new");
        assert_eq!(held[2]["description"], "kept");
        assert_eq!(
            newest_start(&held),
            Some(chrono::DateTime::parse_from_rfc3339("2024-01-04T00:00:00Z").unwrap().timestamp())
        );
    }
}

//! What the benches share.

/// A JSON document of about `size` bytes, already canonical: the generator of
/// `bench/lib.sh` (14,000 small objects per MB, the shape of a Strava activity list).
pub fn generated(size: usize) -> Vec<u8> {
    let mut items = Vec::new();
    let mut len = 0;
    let mut i = 0;
    while len < size {
        let item =
            format!(r#"{{"distance":{}.5,"id":{i},"kudos":{},"name":"activity-{i:06}"}}"#, i * 37 % 9973, i % 17);
        len += item.len() + 1;
        items.push(item);
        i += 1;
    }
    format!(r#"{{"activities":[{}]}}"#, items.join(",")).into_bytes()
}

/// `doc` as Postgres prints a JSONB value (`data::text`): `", "` and `": "` between
/// tokens and each object's keys ordered by length first, then bytes, as JSONB stores
/// them. What a read from Postgres has to turn back into the canonical form.
#[allow(dead_code)] // each bench compiles this module; only memory_hit reads rows
pub fn jsonb_text(doc: &[u8]) -> String {
    fn write(value: &serde_json::Value, out: &mut String) {
        match value {
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write(item, out);
                }
                out.push(']');
            }
            serde_json::Value::Object(map) => {
                let mut members: Vec<_> = map.iter().collect();
                members.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
                out.push('{');
                for (i, (key, item)) in members.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&serde_json::Value::String(key.clone()).to_string());
                    out.push_str(": ");
                    write(item, out);
                }
                out.push('}');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let value: serde_json::Value = serde_json::from_slice(doc).expect("JSON");
    let mut out = String::with_capacity(doc.len() * 5 / 4);
    write(&value, &mut out);
    out
}

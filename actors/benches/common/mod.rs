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

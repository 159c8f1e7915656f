//! `If-Match` writes are linearizable across both instances: no two acknowledged
//! `If-Match` PUTs of one cache were built on the same ETag, and no two acknowledged
//! increments of the counter wrote the same number (two increments from one count,
//! whatever their ETags, are a lost update).

use super::facts::Facts;
use super::record::{Kind, Op};
use std::collections::BTreeMap;

/// Two successes from one base.
pub fn linearizable(f: &Facts<'_>, out: &mut Vec<String>) {
    let mut by_base: BTreeMap<(&str, &str), Vec<&Op>> = BTreeMap::new();
    for op in f.ops.iter().filter(|op| op.acked_put()) {
        if let Kind::Put { if_match: Some(m), .. } = &op.kind {
            by_base.entry((op.cache, m.as_str())).or_default().push(op);
        }
    }
    for ((cache, base), ops) in by_base.iter().filter(|(_, ops)| ops.len() > 1) {
        let lines: Vec<String> = ops.iter().map(|op| format!("    {}", op.line())).collect();
        out.push(format!("{cache}: {} If-Match PUTs from {base} all succeeded:\n{}", ops.len(), lines.join("\n")));
    }
    let mut by_n: BTreeMap<u64, Vec<&Op>> = BTreeMap::new();
    for op in f.on("counter").filter(|op| op.acked_put()) {
        if let Some(n) = op.put_body().and_then(|b| b["n"].as_u64()) {
            by_n.entry(n).or_default().push(op);
        }
    }
    for (n, ops) in by_n.iter().filter(|(_, ops)| ops.len() > 1) {
        let lines: Vec<String> = ops.iter().map(|op| format!("    {}", op.line())).collect();
        out.push(format!("counter: {} increments to {n} succeeded:\n{}", ops.len(), lines.join("\n")));
    }
}

/// Acknowledged increments and the final count, for the summary.
pub fn counter_summary(f: &Facts<'_>) -> String {
    let acked = f.on("counter").filter(|op| op.acked_put() && op.put_body().is_some_and(|b| b["w"] != "init")).count();
    let unknown = f.on("counter").filter(|op| op.put_body().is_some() && op.status.is_none()).count();
    let last = f.final_read("counter").and_then(|r| r.served()).and_then(|d| d["n"].as_u64());
    format!("counter: {acked} increments acknowledged, {unknown} unanswered, final count {last:?}")
}

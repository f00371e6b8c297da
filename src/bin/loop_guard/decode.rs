//! `loop-guard decode`: a chain in words.

use lambda_loop_guard::trace_header::TraceHeader;
use lambda_loop_guard::{FunctionId, Lineage};

/// What `value` (a lineage, a trace header, or a log or EMF line holding
/// either) says, with the ids of `names` named.
pub(crate) fn describe(value: &str, names: &[String]) -> Result<String, String> {
    let value = value.trim();
    let (lineage, root) = find(value).ok_or_else(|| {
        "no lineage found: give a lineage (v1.... or v2....), a trace header with LoopGuard=, \
         or a log line holding one"
            .to_owned()
    })?;
    let name_of = |id: FunctionId| {
        names
            .iter()
            .find(|n| FunctionId::from_identity(n) == id)
            .map_or_else(|| format!("function {id}"), |n| format!("{n} ({id})"))
    };
    let mut text = format!("hops: {}\n", lineage.hops());
    if let Some(chain) = lineage.chain() {
        text.push_str(&format!("chain id: {chain}\n"));
        match lineage.budget() {
            Some(budget) => {
                text.push_str(&format!("budget left for this subtree: {budget} run(s)\n"))
            }
            None => text.push_str("budget: none\n"),
        }
    }
    if let Some(root) = root {
        text.push_str(&format!("chain root: {root}\n"));
    }
    let mut entries: Vec<(FunctionId, u16)> = lineage.entries().collect();
    entries.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.as_u32().cmp(&b.0.as_u32())));
    for (id, runs) in entries {
        text.push_str(&format!("{}: {runs} run(s)\n", name_of(id)));
    }
    Ok(text)
}

/// The lineage in `value` and the chain root, if one is given.
fn find(value: &str) -> Option<(Lineage, Option<String>)> {
    if let Ok(lineage) = value.parse::<Lineage>() {
        return Some((lineage, None));
    }
    // A JSON line: an EMF drop line (`Lineage`, `ChainRoot`) or a JSON log.
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(value) {
        let text = |key: &str| json.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        if let Some(lineage) = text("Lineage").and_then(|l| l.parse().ok()) {
            return Some((lineage, text("ChainRoot")));
        }
    }
    if let Ok(header) = TraceHeader::parse(value) {
        if let (root, Some(lineage)) = header.root_and_lineage() {
            return Some((lineage, root.map(str::to_owned)));
        }
    }
    // Anything else: the first token that is a lineage (a text log line:
    // `Lineage=v1....` or `lineage=v1....`), or holds a trace header.
    value
        .split(|c: char| c.is_whitespace() || matches!(c, '"' | ',' | ';'))
        .map(|token| token.rsplit_once('=').map_or(token, |(_, v)| v))
        .find_map(|token| token.parse::<Lineage>().ok())
        .map(|lineage| (lineage, None))
}

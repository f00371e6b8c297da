//! Checks the golden vectors published in docs/wire-format.md.

use lambda_loop_guard::signing::{SigningKeys, Verified};
use lambda_loop_guard::trace_header::TraceHeader;
use lambda_loop_guard::{FunctionId, Lineage};

fn golden_lines() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/wire-format.md"))
        .expect("docs/wire-format.md is readable");
    let start = doc.find("```golden\n").expect("a ```golden block") + "```golden\n".len();
    let end = start + doc[start..].find("```").expect("the block is closed");
    doc[start..end]
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.trim().is_empty())
        .collect()
}

#[test]
fn golden_vectors_hold() {
    let lines = golden_lines();
    assert!(
        lines.len() >= 20,
        "the golden block has {} lines",
        lines.len()
    );
    for line in &lines {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["function-id", identity, hex] => {
                assert_eq!(
                    FunctionId::from_identity(identity).to_string(),
                    *hex,
                    "{line}"
                )
            }
            ["canonical", value] => {
                let l: Lineage = value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
                assert_eq!(l.to_string(), *value, "{line}");
            }
            ["normalizes", input, output] => {
                let l: Lineage = input.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
                assert_eq!(l.to_string(), *output, "{line}");
            }
            ["rejects", input] => assert!(input.parse::<Lineage>().is_err(), "{line}"),
            ["stamps", header, lineage, out] => {
                let header = if *header == "-" { "" } else { header };
                let lineage: Lineage = lineage.parse().unwrap();
                let written = TraceHeader::parse(header).unwrap().with_lineage(&lineage);
                assert_eq!(written, *out, "{line}");
                assert_eq!(
                    TraceHeader::parse(&written).unwrap().lineage(),
                    Some(lineage)
                );
            }
            ["signs", key, lineage, signed] => {
                let keys = SigningKeys::new([key]).unwrap().unwrap();
                let lineage: Lineage = lineage.parse().unwrap();
                assert_eq!(keys.sign(&lineage).to_string(), *signed, "{line}");
                assert!(matches!(keys.verify(signed), Verified::Signed(_)), "{line}");
            }
            ["verifies", keys, value] => {
                let keys = SigningKeys::new(keys.split(',')).unwrap().unwrap();
                assert!(matches!(keys.verify(value), Verified::Signed(_)), "{line}");
            }
            ["refuses", keys, value] => {
                let keys = SigningKeys::new(keys.split(',')).unwrap().unwrap();
                assert_eq!(keys.verify(value), Verified::Rejected, "{line}");
            }
            _ => panic!("unknown golden line: {line}"),
        }
    }
}

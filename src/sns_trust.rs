//! Which SNS topics' notification envelopes, found in SQS message bodies,
//! are read for a lineage (`LOOP_GUARD_SNS_TOPICS`).
//!
//! An SNS subscription without raw message delivery wraps each message in a
//! JSON envelope (`Type`, `TopicArn`, `MessageAttributes`, ...) that becomes
//! the SQS body, so the lineage travels inside the body. But anyone who
//! controls message bodies (an API Gateway → SQS integration, a producer
//! that forwards user input) can write the same JSON: shape proves nothing.
//! An envelope is therefore read only when it is a `Notification` from a
//! topic listed here; by default none is. A listed entry is a topic ARN, a
//! prefix ending in `*` that names an account and region at least
//! (`arn:aws:sns:eu-west-1:123456789012:*` for every topic of one account and
//! region, `...:123456789012:orders-*` for some of them), or `*` alone for every topic (whoever
//! writes message bodies can then set counts).
//!
//! Raw message delivery needs none of this: SNS message attributes become
//! SQS message attributes, which only the sender's API call sets.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::excerpt::Excerpt;

/// Expected-value text of `LOOP_GUARD_SNS_TOPICS` and
/// [`trust_sns_topic`](crate::LoopGuardConfigBuilder::trust_sns_topic).
pub(crate) const EXPECTED: &str = "expected comma-separated SNS topic ARNs \
     (arn:<partition>:sns:<region>:<account>:<topic>), prefixes ending in * that name the \
     account and region (arn:aws:sns:eu-west-1:123456789012:*), or *";

/// The topics whose envelopes are trusted. Empty (the default) trusts none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedTopics {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Topic(String),
    Prefix(String),
}

impl TrustedTopics {
    /// `LOOP_GUARD_SNS_TOPICS`: entries separated by commas, spaces around
    /// them ignored; `None` when one is not a topic ARN, a prefix or `*`.
    pub(crate) fn parse(raw: &str) -> Option<Self> {
        let mut topics = Self::default();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            topics.add(entry)?;
        }
        Some(topics)
    }

    /// Adds one entry; `None` when it is not a topic ARN, a prefix or `*`.
    pub(crate) fn add(&mut self, entry: &str) -> Option<()> {
        let entry = match entry.strip_suffix('*') {
            Some(prefix) if prefix.is_empty() || covers_an_account(prefix) => {
                Entry::Prefix(prefix.to_owned())
            }
            Some(_) => return None,
            None if is_topic_arn(entry) => Entry::Topic(entry.to_owned()),
            None => return None,
        };
        let text = match &entry {
            Entry::Topic(s) | Entry::Prefix(s) => s,
        };
        if text.contains(['*', ',']) || text.contains(char::is_whitespace) {
            return None;
        }
        if !self.entries.contains(&entry) {
            self.entries.push(entry);
        }
        Some(())
    }

    /// Whether an envelope from `topic_arn` is read.
    pub fn trusts(&self, topic_arn: &str) -> bool {
        self.entries.iter().any(|entry| match entry {
            Entry::Topic(arn) => arn == topic_arn,
            Entry::Prefix(prefix) => topic_arn.starts_with(prefix.as_str()),
        })
    }

    /// Whether no topic is trusted (the default).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A prefix that names one account and region of SNS at least:
/// `arn:<partition>:sns:<region>:<account>:` and the start of a topic name,
/// so that a prefix never trusts another account's topics by accident.
fn covers_an_account(prefix: &str) -> bool {
    let parts: Vec<&str> = prefix.splitn(6, ':').collect();
    matches!(parts.as_slice(),
        ["arn", partition, "sns", region, account, _]
            if [partition, region, account].iter().all(|p| !p.is_empty()))
}

/// `arn:<partition>:sns:<region>:<account>:<topic>`, every part present.
fn is_topic_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(),
        ["arn", partition, "sns", region, account, topic]
            if [partition, region, account, topic].iter().all(|p| !p.is_empty()))
}

/// Says, once per process, that an envelope carrying a lineage came from a
/// topic that is not trusted, so that a loop through it is not invisible
/// without a word.
pub(crate) fn warn_untrusted(topic_arn: &str) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            topic_arn = %Excerpt(topic_arn),
            "an SNS envelope in an SQS body carries a loop guard lineage, but its topic is \
             not in LOOP_GUARD_SNS_TOPICS: the lineage is ignored (said once per process; \
             list the topic, or use raw message delivery, to count this hop)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:orders";

    #[test]
    fn nothing_is_trusted_by_default() {
        assert!(!TrustedTopics::default().trusts(TOPIC));
        assert!(TrustedTopics::parse("").unwrap().is_empty());
        assert!(TrustedTopics::parse(" , ").unwrap().is_empty());
    }

    #[test]
    fn exact_topics_prefixes_and_star() {
        let exact = TrustedTopics::parse(TOPIC).unwrap();
        assert!(exact.trusts(TOPIC));
        assert!(!exact.trusts("arn:aws:sns:eu-west-1:123456789012:orders-2"));
        assert!(!exact.trusts("arn:aws:sns:eu-west-1:123456789012:order"));

        let account = TrustedTopics::parse(" arn:aws:sns:eu-west-1:123456789012:* ").unwrap();
        assert!(account.trusts(TOPIC));
        assert!(!account.trusts("arn:aws:sns:eu-west-1:999999999999:orders"));

        let all = TrustedTopics::parse("*").unwrap();
        assert!(all.trusts(TOPIC) && all.trusts("anything"));

        let two = TrustedTopics::parse(&format!("{TOPIC},arn:aws:sns:us-east-1:1:b")).unwrap();
        assert!(two.trusts(TOPIC) && two.trusts("arn:aws:sns:us-east-1:1:b"));
        assert!(!two.trusts("arn:aws:sns:us-east-1:1:c"));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "orders",
            "arn:aws:sqs:eu-west-1:123456789012:orders",
            "arn:aws:sns:eu-west-1:123456789012:",
            "arn:aws:sns::123456789012:orders",
            "arn:aws:sns:eu-west-1:123456789012",
            "orders*",
            "arn:aws:sns:*:123456789012:*",
            "arn:*",
            "arn:aws:sns:eu-west-1:1234*",
            "arn:aws:sqs:eu-west-1:123456789012:*",
            "**",
            "arn:aws:sns:eu-west-1:123456789012:or ders",
        ] {
            assert_eq!(TrustedTopics::parse(bad), None, "{bad}");
        }
    }
}

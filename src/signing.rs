//! Signed lineages: a MAC on every lineage the guard writes, so that a
//! count nobody with the key wrote is not believed.
//!
//! With `LOOP_GUARD_SIGNING_KEYS` set (one or more secrets, comma
//! separated), every lineage a guarded function sends ends in `.s<tag>`: the
//! first 64 bits of HMAC-SHA256 over the rest of the value, under the first
//! key. A reader accepts a value whose tag verifies under any of the keys
//! (compared in constant time), so keys rotate without a flag day: add the
//! new key second everywhere, then make it first, then drop the old one.
//! A value without a tag, or whose tag does not verify, is treated as
//! absent (counted from zero) and counted in the `UnverifiedLineages`
//! metric: a forged high count cannot drop work, and a forged table cannot
//! hide a loop.
//!
//! What a signature does not prove: that the value belongs to the message
//! it arrived on. Whoever can read a system's messages can copy a whole
//! signed value onto another message; it then claims only a count a real
//! chain of that system reached.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::lineage::Lineage;

/// The shortest secret accepted, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// The signing keys: the first signs, all verify. Their `Debug` output
/// shows how many there are, never the keys.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeys {
    keys: Vec<Vec<u8>>,
}

/// What a signed reader makes of one lineage value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The tag verifies under one of the keys.
    Signed(Lineage),
    /// No tag, or one that verifies under none of the keys: the value is
    /// treated as absent.
    Rejected,
}

impl SigningKeys {
    /// Keys from secrets: the first signs, all verify. Each must be at
    /// least [`MIN_KEY_LEN`] bytes; `None` if there is none.
    pub fn new<I, K>(secrets: I) -> Result<Option<Self>, String>
    where
        I: IntoIterator<Item = K>,
        K: AsRef<[u8]>,
    {
        let mut keys = Vec::new();
        for (i, secret) in secrets.into_iter().enumerate() {
            let secret = secret.as_ref();
            if secret.len() < MIN_KEY_LEN {
                return Err(format!(
                    "signing key {} is {} bytes; at least {MIN_KEY_LEN} are needed",
                    i + 1,
                    secret.len()
                ));
            }
            keys.push(secret.to_vec());
        }
        Ok((!keys.is_empty()).then_some(SigningKeys { keys }))
    }

    /// `lineage` signed with the first key.
    pub fn sign(&self, lineage: &Lineage) -> Lineage {
        let unsigned = lineage.unsigned();
        match self
            .keys
            .first()
            .and_then(|key| hmac(key, unsigned.encode().as_bytes()))
        {
            Some(mac) => {
                let mut tag = [0u8; 8];
                tag.copy_from_slice(&mac.finalize().into_bytes()[..8]);
                unsigned.with_tag(u64::from_be_bytes(tag))
            }
            None => unsigned,
        }
    }

    /// Whether the encoded value `text` carries a tag that verifies under
    /// one of the keys, and the lineage it holds.
    pub fn verify(&self, text: &str) -> Verified {
        let (body, Some(tag)) = Lineage::split_tag(text) else {
            return Verified::Rejected;
        };
        let Ok(lineage) = Lineage::decode(text) else {
            return Verified::Rejected;
        };
        let tag = tag.to_be_bytes();
        let verifies = self.keys.iter().any(|key| {
            hmac(key, body.as_bytes()).is_some_and(|mac| mac.verify_truncated_left(&tag).is_ok())
        });
        if verifies {
            Verified::Signed(lineage)
        } else {
            Verified::Rejected
        }
    }

    /// How many keys verify (the first of them signs).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a key set holds at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// HMAC-SHA256 of `message` under `key` (HMAC takes keys of any length:
/// `None` never happens).
fn hmac(key: &[u8], message: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    mac.update(message);
    Some(mac)
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeys")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::{ChainId, FunctionId};
    use proptest::prelude::*;

    const OLD: &str = "an-old-secret-of-32-bytes-000000";
    const NEW: &str = "a-new-secret-of-32-bytes-1111111";

    fn keys(secrets: &[&str]) -> SigningKeys {
        SigningKeys::new(secrets).unwrap().unwrap()
    }

    fn deep() -> Lineage {
        let me = FunctionId::from_identity("orders");
        (0..9).fold(Lineage::new(), |l, _| l.record_run(me))
    }

    #[test]
    fn a_signed_value_verifies_and_anything_else_is_rejected() {
        let keys = keys(&[NEW]);
        let signed = keys.sign(&deep());
        let text = signed.to_string();
        assert!(text.starts_with("v1.9.") && text.contains(".s"), "{text}");
        assert_eq!(keys.verify(&text), Verified::Signed(signed));
        // Forged: an unsigned value, a made-up tag, a changed count.
        assert_eq!(keys.verify(&deep().to_string()), Verified::Rejected);
        let (body, _) = Lineage::split_tag(&text);
        assert_eq!(
            keys.verify(&format!("{body}.s0123456789abcdef")),
            Verified::Rejected
        );
        let higher = text.replacen("-9.s", "-99.s", 1);
        assert_ne!(higher, text);
        assert_eq!(keys.verify(&higher), Verified::Rejected);
        // Truncated: the tag cut short is not a tag.
        assert_eq!(keys.verify(&text[..text.len() - 1]), Verified::Rejected);
        // Another chain's tag transplanted onto this value.
        let chain = ChainId::from_u64(7).unwrap();
        let other = keys.sign(
            &Lineage::new()
                .with_budget(chain, 5)
                .record_run(FunctionId::from_u32(1)),
        );
        let (_, other_tag) = Lineage::split_tag(&other.to_string());
        let transplanted = format!("{body}.s{:016x}", other_tag.unwrap());
        assert_eq!(keys.verify(&transplanted), Verified::Rejected);
    }

    #[test]
    fn keys_rotate_without_a_flag_day() {
        let before = keys(&[OLD]);
        let during = keys(&[OLD, NEW]);
        let after = keys(&[NEW, OLD]);
        let last = keys(&[NEW]);
        let old_value = before.sign(&deep()).to_string();
        let new_value = after.sign(&deep()).to_string();
        assert!(matches!(during.verify(&old_value), Verified::Signed(_)));
        assert!(matches!(during.verify(&new_value), Verified::Signed(_)));
        assert!(matches!(after.verify(&old_value), Verified::Signed(_)));
        // Re-signed with a key that was dropped: rejected.
        assert_eq!(last.verify(&old_value), Verified::Rejected);
        assert!(matches!(last.verify(&new_value), Verified::Signed(_)));
    }

    #[test]
    fn short_keys_are_refused_and_debug_hides_the_keys() {
        assert!(SigningKeys::new(["short"]).is_err());
        assert_eq!(SigningKeys::new(Vec::<&str>::new()).unwrap(), None);
        let shown = format!("{:?}", keys(&[NEW, OLD]));
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains('2'));
    }

    proptest! {
        #[test]
        fn signed_values_round_trip_within_the_bound(
            runs in proptest::collection::vec(any::<u32>(), 0..40),
            chain in proptest::option::of((1u64.., any::<u32>())),
        ) {
            let mut lineage = Lineage::new();
            if let Some((chain, budget)) = chain {
                lineage = lineage.with_budget(ChainId::from_u64(chain).unwrap(), budget);
            }
            for id in runs {
                lineage = lineage.record_run(FunctionId::from_u32(id));
            }
            let keys = keys(&[NEW]);
            let signed = keys.sign(&lineage);
            let text = signed.encode();
            prop_assert!(text.len() <= crate::lineage::MAX_ENCODED_LEN);
            prop_assert_eq!(Lineage::decode(&text).unwrap(), signed);
            prop_assert_eq!(keys.verify(&text), Verified::Signed(signed));
            prop_assert_eq!(signed.unsigned(), lineage.unsigned());
        }
    }
}
